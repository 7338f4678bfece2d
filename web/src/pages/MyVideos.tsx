import { useState, type FormEvent } from "react";
import { Link } from "react-router";
import { api, describeError } from "../api";
import { Alert } from "../components/Alert";
import { Field } from "../components/Field";
import { Poster, StatusBadge } from "../components/VideoCard";
import { VisibilitySelect } from "../components/VisibilitySelect";
import { formatDate, formatDuration } from "../format";
import { useInterval, useLoad, useTitle } from "../hooks";
import type { Video, Visibility } from "../types";

export function MyVideosPage() {
  useTitle("My videos");
  const list = useLoad(() => api.myVideos(null), []);
  const items = list.data?.items ?? [];
  // Live progress: poll while anything is still on its way; stop when all are ready or failed.
  const inFlight = items.some((v) => v.status === "queued" || v.status === "processing");
  useInterval(list.reload, 2000, inFlight);

  return (
    <section aria-labelledby="mine-title">
      <div className="hero row">
        <div>
          <h1 id="mine-title" tabIndex={-1}>
            My videos
          </h1>
          <p className="muted">Your uploads, whatever their state. Only you see this list.</p>
        </div>
        <Link to="/upload" className="btn">
          Upload a video
        </Link>
      </div>
      {list.error && <Alert title="Your videos could not be loaded." message={list.error} onRetry={list.reload} />}
      {list.loading && !list.data && !list.error && <p className="muted" role="status">Loading your videos…</p>}
      {list.data && items.length === 0 && (
        <div className="empty">
          <p>You have not uploaded anything yet.</p>
          <Link to="/upload" className="btn">
            Upload your first video
          </Link>
        </div>
      )}
      {items.length > 0 && (
        <ul className="mine" aria-label="My videos">
          {items.map((v) => (
            <MyVideo key={v.videoId} video={v} onChanged={list.reload} />
          ))}
        </ul>
      )}
    </section>
  );
}

function MyVideo({ video, onChanged }: { video: Video; onChanged: () => void }) {
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [name, setName] = useState(video.displayName);
  const [description, setDescription] = useState(video.description);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.updateVideo(video.videoId, { displayName: name.trim(), description });
      setEditing(false);
      onChanged();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  const changeVisibility = async (visibility: Visibility) => {
    setBusy(true);
    setError(null);
    try {
      await api.updateVideo(video.videoId, { visibility });
      onChanged();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.deleteVideo(video.videoId);
      onChanged();
    } catch (err) {
      setError(describeError(err));
      setBusy(false);
    }
  };

  return (
    <li className="mine-item" aria-label={video.displayName} data-video-id={video.videoId}>
      <Poster video={video} className="mine-poster" />
      <div className="mine-body">
        <div className="mine-head">
          <h2 className="card-title">{video.displayName}</h2>
          <StatusBadge video={video} />
        </div>
        <p className="muted small">
          {formatDate(video.uploadTime)}
          {video.durationSeconds != null && ` · ${formatDuration(video.durationSeconds)}`}
        </p>
        {video.status === "processing" && (
          <progress className="bar" max={100} value={video.progress} aria-label={`Processing ${video.displayName}`} />
        )}
        {video.status === "failed" && (
          <p className="failure" role="note">
            <strong>Failed:</strong> {video.failureReason || "the video could not be processed."}
          </p>
        )}
        {video.description && !editing && <p className="description small">{video.description}</p>}
        <VisibilitySelect
          label={`Who can watch ${video.displayName}`}
          value={video.visibility}
          onChange={changeVisibility}
          disabled={busy}
        />
        {video.unpublished && (
          <p className="failure" role="note">
            <strong>Unpublished by a moderator:</strong> only you can watch it until a moderator republishes it.
          </p>
        )}
        {error && <Alert message={error} />}
        {editing ? (
          <form className="form compact" onSubmit={save}>
            <Field label="Title" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />
            <Field
              label="Description"
              multiline
              maxLength={5000}
              value={description}
              onChange={(e) => setDescription(e.target.value)}
            />
            <div className="actions">
              <button type="submit" className="btn small" disabled={busy}>
                Save
              </button>
              <button type="button" className="btn ghost small" onClick={() => setEditing(false)}>
                Cancel
              </button>
            </div>
          </form>
        ) : (
          <div className="actions">
            {video.playable && (
              <Link className="btn small" to={`/watch/${encodeURIComponent(video.videoId)}`}>
                Watch now
              </Link>
            )}
            <button type="button" className="btn ghost small" onClick={() => setEditing(true)}>
              Edit details
            </button>
            {confirming ? (
              <>
                <button type="button" className="btn danger small" onClick={remove} disabled={busy}>
                  Yes, delete it
                </button>
                <button type="button" className="btn ghost small" onClick={() => setConfirming(false)}>
                  Keep it
                </button>
              </>
            ) : (
              <button type="button" className="btn ghost small" onClick={() => setConfirming(true)}>
                Delete
              </button>
            )}
          </div>
        )}
      </div>
    </li>
  );
}
