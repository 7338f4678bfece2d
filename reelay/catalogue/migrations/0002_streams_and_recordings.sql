-- Live relay streams and their recording sessions. States stay free-form VARCHARs: the relay and
-- the recording workflows own their state machines.
CREATE TABLE IF NOT EXISTS streams (
  streamId VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  ownerId VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  name VARCHAR(255) NOT NULL,
  sourceUrl VARCHAR(2048) NOT NULL,
  sourceProtocol VARCHAR(16) NOT NULL,
  kvsStreamName VARCHAR(256) NULL,
  recordEnabled TINYINT(1) NOT NULL DEFAULT 0,
  objectStoreUrl VARCHAR(2048) NULL,
  recordObjectStoreUrl VARCHAR(2048) NULL,
  webhookUrl VARCHAR(2048) NULL,
  desiredState VARCHAR(16) NOT NULL DEFAULT 'stopped',
  state VARCHAR(32) NOT NULL DEFAULT 'stopped',
  lastError TEXT NULL,
  createdAt DATETIME(3) NOT NULL,
  updatedAt DATETIME(3) NOT NULL,
  PRIMARY KEY (streamId),
  KEY idx_streams_owner (ownerId, createdAt),
  KEY idx_streams_desired (desiredState, state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS recording_sessions (
  sessionId VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  streamId VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  state VARCHAR(32) NOT NULL,
  startedAt DATETIME(3) NOT NULL,
  endedAt DATETIME(3) NULL,
  lastSegmentAt DATETIME(3) NULL,
  videoId VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  failureReason TEXT NULL,
  createdAt DATETIME(3) NOT NULL,
  updatedAt DATETIME(3) NOT NULL,
  PRIMARY KEY (sessionId),
  KEY idx_sessions_stream (streamId, startedAt),
  KEY idx_sessions_stale (state, lastSegmentAt)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
