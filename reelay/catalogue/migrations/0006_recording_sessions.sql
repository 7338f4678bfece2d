-- What the recording workflows need on a session: its writers (JSON list), the store (URL with the
-- secret redacted, and the reference the workflow opens it by), the reconnect window, the last
-- heartbeat, the renditions (JSON), discontinuities, duration, why it ended, and the workflow's
-- state and execution. And a stream's retentionDays for its recordings.
-- Conditional like 0004 (MySQL 8 has no ADD COLUMN IF NOT EXISTS); each ALTER applied whole or not.
SET @reelay_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'recording_sessions' AND COLUMN_NAME = 'executionId') = 0,
  'ALTER TABLE recording_sessions
     ADD COLUMN writers LONGTEXT NULL AFTER state,
     ADD COLUMN storeUrl VARCHAR(2048) NULL AFTER writers,
     ADD COLUMN storeRef VARCHAR(256) NOT NULL DEFAULT ''default'' AFTER storeUrl,
     ADD COLUMN reconnectWindowSeconds INT UNSIGNED NOT NULL DEFAULT 60 AFTER storeRef,
     ADD COLUMN endReason VARCHAR(64) NULL AFTER endedAt,
     ADD COLUMN heartbeatAt DATETIME(3) NULL AFTER lastSegmentAt,
     ADD COLUMN renditions LONGTEXT NULL AFTER heartbeatAt,
     ADD COLUMN discontinuities INT UNSIGNED NOT NULL DEFAULT 0 AFTER renditions,
     ADD COLUMN durationSeconds DOUBLE NULL AFTER discontinuities,
     ADD COLUMN workflowState VARCHAR(32) NULL AFTER failureReason,
     ADD COLUMN executionId VARCHAR(256) NULL AFTER workflowState,
     ADD KEY idx_sessions_heartbeat (state, heartbeatAt),
     ADD CONSTRAINT chk_sessions_state
       CHECK (state IN (''recording'', ''ended'', ''finalizing'', ''ready'', ''failed'')),
     ADD CONSTRAINT chk_sessions_writers CHECK (writers IS NULL OR JSON_VALID(writers)),
     ADD CONSTRAINT chk_sessions_renditions CHECK (renditions IS NULL OR JSON_VALID(renditions))',
  'DO 0');
PREPARE reelay_stmt FROM @reelay_ddl;
EXECUTE reelay_stmt;
DEALLOCATE PREPARE reelay_stmt;
SET @reelay_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'streams' AND COLUMN_NAME = 'retentionDays') = 0,
  'ALTER TABLE streams ADD COLUMN retentionDays INT UNSIGNED NULL AFTER webhookUrl',
  'DO 0');
PREPARE reelay_stmt FROM @reelay_ddl;
EXECUTE reelay_stmt;
DEALLOCATE PREPARE reelay_stmt;
