-- Per-user upload quotas (reelay.quotas): the bytes each owner declared per UTC day. Creating a video
-- locks the owner's row of the day (SELECT ... FOR UPDATE), so concurrent uploads of one owner are
-- counted one after another. Rows outlive deleted videos: deleting does not give the day's bytes back.
CREATE TABLE IF NOT EXISTS upload_usage (
  ownerId VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  day DATE NOT NULL,
  bytes BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (ownerId, day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
