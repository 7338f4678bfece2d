import { Link } from "react-router";
import { formatDate, formatDuration } from "../format";
import type { Video } from "../types";

export function Poster({ video, className }: { video: Video; className?: string }) {
  return video.thumbnailUrl ? (
    <img className={className ?? "poster"} src={video.thumbnailUrl} alt="" loading="lazy" />
  ) : (
    <div className={`${className ?? "poster"} poster-empty`} aria-hidden="true">
      <svg viewBox="0 0 24 24" width="36" height="36">
        <path d="M8 5v14l11-7z" fill="currentColor" />
      </svg>
    </div>
  );
}

export function VideoCard({ video }: { video: Video }) {
  return (
    <li className="card">
      <Link to={`/watch/${encodeURIComponent(video.videoId)}`} className="card-link">
        <div className="thumb">
          <Poster video={video} />
          {video.durationSeconds != null && <span className="duration">{formatDuration(video.durationSeconds)}</span>}
        </div>
        <div className="card-body">
          <h2 className="card-title">{video.displayName}</h2>
          <p className="muted">{formatDate(video.uploadTime)}</p>
        </div>
      </Link>
    </li>
  );
}

export function StatusBadge({ video }: { video: Video }) {
  const label =
    video.status === "processing"
      ? `processing ${video.progress} %`
      : video.status === "awaiting_upload"
        ? "awaiting upload"
        : video.status;
  return <span className={`badge badge-${video.status}`}>{label}</span>;
}
