-- Events that have no video: stream and recording events name their subject instead
-- ('stream:<streamId>', ...). videoId stays for video events, so nothing changes for them.
-- MySQL 8 (RDS) has no ADD COLUMN IF NOT EXISTS: each addition is a prepared statement that does
-- nothing when the column or key is already there, so a run that died half way can run again.
ALTER TABLE event_outbox MODIFY videoId VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL;
SET @reelay_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'event_outbox' AND COLUMN_NAME = 'subject') = 0,
  'ALTER TABLE event_outbox ADD COLUMN subject VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER videoId, ADD KEY idx_outbox_subject (subject, nextAttemptAt)',
  'DO 0');
PREPARE reelay_stmt FROM @reelay_ddl;
EXECUTE reelay_stmt;
DEALLOCATE PREPARE reelay_stmt;
