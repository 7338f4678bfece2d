import { Link } from "react-router";
import { api } from "../api";
import { Alert } from "../components/Alert";
import { VideoCard } from "../components/VideoCard";
import { useCursorPages, useLoad, useSession, useTitle } from "../hooks";

const PAGE_SIZE = 12;

export function HomePage() {
  useTitle("");
  const signedIn = !!useSession();
  const { cursor, older: olderFrom, newer } = useCursorPages();
  const page = useLoad(() => api.listVideos(cursor, PAGE_SIZE), [cursor]);
  const older = () => page.data?.nextCursor && olderFrom(page.data.nextCursor);

  return (
    <section aria-labelledby="home-title">
      <div className="hero row">
        <div>
          <h1 id="home-title" tabIndex={-1}>
            Latest videos
          </h1>
          <p className="muted">Everything people have shared on Reelay, newest first.</p>
        </div>
        <Link to={signedIn ? "/upload" : "/register"} className="btn">
          {signedIn ? "Upload a video" : "Sign up to upload"}
        </Link>
      </div>
      {page.error && <Alert title="The videos could not be loaded." message={page.error} onRetry={page.reload} />}
      {page.loading && !page.data && !page.error && <p className="muted" role="status">Loading videos…</p>}
      {page.data && page.data.items.length === 0 && !page.error && (
        <div className="empty">
          <p>No videos yet. Be the first to share one.</p>
        </div>
      )}
      {page.data && page.data.items.length > 0 && (
        <ul className="grid" aria-label="Videos">
          {page.data.items.map((v) => (
            <VideoCard key={v.videoId} video={v} />
          ))}
        </ul>
      )}
      {page.data && (cursor || page.data.nextCursor) && (
        <nav className="pager" aria-label="Pages">
          <button type="button" className="btn ghost" onClick={newer} disabled={!cursor}>
            ← Newer
          </button>
          <button type="button" className="btn ghost" onClick={older} disabled={!page.data.nextCursor}>
            Older →
          </button>
        </nav>
      )}
    </section>
  );
}
