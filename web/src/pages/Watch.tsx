import { Link, useParams } from "react-router";
import { ApiError, api } from "../api";
import { Alert, Notice } from "../components/Alert";
import { Player } from "../components/Player";
import { StatusBadge } from "../components/VideoCard";
import { formatDate, formatDuration } from "../format";
import { useInterval, useLoad, useTitle } from "../hooks";
import { session } from "../session";
import type { Video } from "../types";
import { NotFoundPage } from "./NotFound";

/** The public view; a video only its owner may see (private, unpublished or not ready yet) answers
 * 404 there, so a signed-in viewer asks for the owner's view, which signs a private video's playback. */
async function loadVideo(videoId: string): Promise<Video> {
  try {
    return await api.getVideo(videoId);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404 || !session.get()) throw e;
    return api.getMyVideo(videoId);
  }
}

export function WatchPage() {
  const { videoId = "" } = useParams();
  const video = useLoad(() => loadVideo(videoId), [videoId]);
  const v = video.data;
  useTitle(v?.displayName ?? "Video");
  // Poll while the video is on its way; stop once it is ready or failed.
  const inFlight = !!v && (v.status === "queued" || v.status === "processing" || v.status === "awaiting_upload");
  useInterval(video.reload, 2000, inFlight && !video.error);

  if (video.status === 404) return <NotFoundPage what="video" />;
  if (!v) {
    return video.error ? (
      <Alert title="This video could not be loaded." message={video.error} onRetry={video.reload} />
    ) : (
      <p className="muted" role="status">
        Loading…
      </p>
    );
  }
  return (
    <article className="watch" aria-labelledby="video-title">
      {v.playable && v.playbackUrl ? (
        <Player key={v.videoId} video={v} />
      ) : (
        <div className="player placeholder">
          {v.thumbnailUrl && <img src={v.thumbnailUrl} alt="" />}
          <div className="placeholder-text">
            {v.status === "failed" ? "This video could not be processed." : "This video is being prepared…"}
          </div>
        </div>
      )}
      <div className="watch-meta">
        <h1 id="video-title" tabIndex={-1}>
          {v.displayName}
        </h1>
        <p className="muted">
          {v.durationSeconds != null && (
            <span>
              <span className="sr-only">Duration </span>
              <span data-testid="duration">{formatDuration(v.durationSeconds)}</span> ·{" "}
            </span>
          )}
          {formatDate(v.uploadTime)} {v.status !== "ready" && <StatusBadge video={v} />}
        </p>
        {v.status === "failed" && (
          <Alert title="Processing failed" message={v.failureReason || "The video could not be transcoded."} />
        )}
        {video.error && <Notice>{video.error}</Notice>}
        {v.description ? <p className="description">{v.description}</p> : null}
        <p>
          <Link to="/">← All videos</Link>
        </p>
      </div>
    </article>
  );
}
