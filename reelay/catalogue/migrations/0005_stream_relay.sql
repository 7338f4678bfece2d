-- What the live relay needs on a stream: its source secrets (encrypted by the application, never in
-- sourceUrl), the video mode, the health a relay task reports, and the task's lease. leaseToken is a
-- fencing counter: every successful claim adds one, and a task's writes carry the token it got, so a
-- task that lost its lease can no longer write. deletedAt marks a stream deleted while a task still
-- held its lease: the reconciler stops that task, and releasing the lease removes the row.
-- Conditional like 0004 (MySQL 8 has no ADD COLUMN IF NOT EXISTS); one ALTER, applied whole or not.
SET @reelay_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'streams' AND COLUMN_NAME = 'leaseToken') = 0,
  'ALTER TABLE streams
     ADD COLUMN sourceSecret TEXT CHARACTER SET ascii COLLATE ascii_bin NULL AFTER sourceProtocol,
     ADD COLUMN videoMode VARCHAR(16) NOT NULL DEFAULT ''auto'' AFTER kvsStreamName,
     ADD COLUMN stateSince DATETIME(3) NULL AFTER state,
     ADD COLUMN outageCause VARCHAR(512) NULL AFTER stateSince,
     ADD COLUMN outageSince DATETIME(3) NULL AFTER outageCause,
     ADD COLUMN reconnects INT UNSIGNED NOT NULL DEFAULT 0 AFTER outageSince,
     ADD COLUMN inputBitrateBps BIGINT UNSIGNED NULL AFTER reconnects,
     ADD COLUMN lastFragmentNumber VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER inputBitrateBps,
     ADD COLUMN lastFragmentTimecode BIGINT UNSIGNED NULL AFTER lastFragmentNumber,
     ADD COLUMN lastFragmentAckAt DATETIME(3) NULL AFTER lastFragmentTimecode,
     ADD COLUMN credentialsExpireAt DATETIME(3) NULL AFTER lastFragmentAckAt,
     ADD COLUMN leaseOwner VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL AFTER credentialsExpireAt,
     ADD COLUMN leaseExpiresAt DATETIME(3) NULL AFTER leaseOwner,
     ADD COLUMN leaseToken BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER leaseExpiresAt,
     ADD COLUMN taskStartedAt DATETIME(3) NULL AFTER leaseToken,
     ADD COLUMN heartbeatAt DATETIME(3) NULL AFTER taskStartedAt,
     ADD COLUMN deletedAt DATETIME(3) NULL AFTER updatedAt,
     ADD UNIQUE KEY uq_streams_kvs (kvsStreamName),
     ADD KEY idx_streams_owner_page (ownerId, createdAt DESC, streamId DESC),
     ADD KEY idx_streams_lease (desiredState, leaseExpiresAt),
     ADD CONSTRAINT chk_streams_desired CHECK (desiredState IN (''running'', ''stopped'')),
     ADD CONSTRAINT chk_streams_state
       CHECK (state IN (''stopped'', ''starting'', ''running'', ''reconnecting'', ''stopping'', ''failed'')),
     ADD CONSTRAINT chk_streams_mode CHECK (videoMode IN (''auto'', ''passthrough'', ''transcode'')),
     ADD CONSTRAINT chk_streams_protocol CHECK (sourceProtocol IN (''hls'', ''rtsp'', ''srt''))',
  'DO 0');
PREPARE reelay_stmt FROM @reelay_ddl;
EXECUTE reelay_stmt;
DEALLOCATE PREPARE reelay_stmt;
