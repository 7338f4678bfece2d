-- Visibility (public: listed and playable by anyone; unlisted: playable with the link; private: the
-- owner only), the moderators' unpublish flag (the video plays for its owner only, whatever its
-- visibility, until a moderator lifts it), and the moderation audit log.
-- Conditional like 0004 (MySQL 8 has no ADD COLUMN IF NOT EXISTS); one ALTER, applied whole or not.
SET @reelay_ddl = IF(
  (SELECT COUNT(*) FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'videos' AND COLUMN_NAME = 'visibility') = 0,
  'ALTER TABLE videos
     ADD COLUMN visibility VARCHAR(16) NOT NULL DEFAULT ''public'' AFTER source,
     ADD COLUMN unpublished TINYINT(1) NOT NULL DEFAULT 0 AFTER visibility,
     ADD KEY idx_videos_listed (status, visibility, unpublished, uploadTime DESC, videoId DESC),
     ADD CONSTRAINT chk_videos_visibility CHECK (visibility IN (''public'', ''unlisted'', ''private''))',
  'DO 0');
PREPARE reelay_stmt FROM @reelay_ddl;
EXECUTE reelay_stmt;
DEALLOCATE PREPARE reelay_stmt;

-- Who did what to which video, when and why. videoId has no foreign key: a deleted video's record stays.
CREATE TABLE IF NOT EXISTS moderation_audit (
  auditId BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  moderatorId VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  moderatorEmail VARCHAR(320) NOT NULL,
  action VARCHAR(32) NOT NULL,
  videoId VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  ownerId VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  reason TEXT NOT NULL,
  createdAt DATETIME(3) NOT NULL,
  PRIMARY KEY (auditId),
  KEY idx_moderation_video (videoId, auditId),
  CONSTRAINT chk_moderation_action CHECK (action IN ('unpublish', 'republish', 'delete'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
