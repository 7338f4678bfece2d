-- The transactional outbox: video.ready / video.failed are inserted in the same transaction as the
-- status change they announce, and deleted once published (reelay/events.py). nextAttemptAt is when
-- an event is due: now when recorded, then the end of each publisher's lease. eventKey (a UUID) is
-- what subscribers see as eventId: unlike the AUTO_INCREMENT it is not reissued after a restore.
CREATE TABLE IF NOT EXISTS event_outbox (
  eventId BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  eventKey VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  eventType VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  videoId VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  detail LONGTEXT NOT NULL,
  attempts INT UNSIGNED NOT NULL DEFAULT 0,
  createdAt DATETIME(3) NOT NULL,
  nextAttemptAt DATETIME(3) NOT NULL,
  PRIMARY KEY (eventId),
  UNIQUE KEY uq_outbox_key (eventKey),
  KEY idx_outbox_due (nextAttemptAt, eventId),
  KEY idx_outbox_video (videoId, nextAttemptAt),
  CONSTRAINT chk_outbox_detail CHECK (JSON_VALID(detail))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
