-- One mover at a time per video's media (reelay.media_location): a move between the public and the
-- private output prefix holds this lease, so two opposite moves can never delete each other's copies.
-- A row per video being moved, deleted when its mover lets go; one whose expiresAt passed is free.
-- ownerId is unique per claim (a UUID): renewing and releasing name it, so a mover whose lease ran
-- out and passed to another cannot renew it, nor delete under it. Not tied to videos: a deleted
-- video's media is deleted under the same lease.
CREATE TABLE IF NOT EXISTS media_moves (
  videoId VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  ownerId VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  expiresAt DATETIME(3) NOT NULL,
  PRIMARY KEY (videoId)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
