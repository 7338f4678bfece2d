-- What the recordings API adds. On a stream: its own recording store's URL sealed by the application
-- (recordObjectStoreUrl keeps only the redacted URL, for answers), the reconnect window and the
-- encoded renditions to record. On a session: the sealed URL of the store it recorded to (a webhook's
-- answer is not asked again by the workflow), where that store came from and why an earlier choice
-- fell back, and the state 'expired' (removed by the stream's retention).
-- Conditional like 0004 (MySQL 8 has no ADD COLUMN IF NOT EXISTS); each ALTER applied whole or not.
SET @reelay_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'streams' AND COLUMN_NAME = 'recordRenditions') = 0,
  'ALTER TABLE streams
     ADD COLUMN recordStoreSecret TEXT CHARACTER SET ascii COLLATE ascii_bin NULL AFTER recordObjectStoreUrl,
     ADD COLUMN reconnectWindowSeconds INT UNSIGNED NULL AFTER retentionDays,
     ADD COLUMN recordRenditions LONGTEXT NULL AFTER reconnectWindowSeconds,
     ADD CONSTRAINT chk_streams_renditions CHECK (recordRenditions IS NULL OR JSON_VALID(recordRenditions)),
     ADD CONSTRAINT chk_streams_retention CHECK (retentionDays IS NULL OR retentionDays BETWEEN 1 AND 3650)',
  'DO 0');
PREPARE reelay_stmt FROM @reelay_ddl;
EXECUTE reelay_stmt;
DEALLOCATE PREPARE reelay_stmt;
SET @reelay_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'recording_sessions' AND COLUMN_NAME = 'storeSource') = 0,
  'ALTER TABLE recording_sessions
     ADD COLUMN storeSecret TEXT CHARACTER SET ascii COLLATE ascii_bin NULL AFTER storeRef,
     ADD COLUMN storeSource VARCHAR(16) NOT NULL DEFAULT ''default'' AFTER storeSecret,
     ADD COLUMN storeFallback TEXT NULL AFTER storeSource,
     ADD KEY idx_sessions_stream_page (streamId, startedAt DESC, sessionId DESC),
     DROP CONSTRAINT chk_sessions_state,
     ADD CONSTRAINT chk_sessions_state
       CHECK (state IN (''recording'', ''ended'', ''finalizing'', ''ready'', ''failed'', ''expired''))',
  'DO 0');
PREPARE reelay_stmt FROM @reelay_ddl;
EXECUTE reelay_stmt;
DEALLOCATE PREPARE reelay_stmt;
