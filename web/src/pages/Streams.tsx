import { Link } from "react-router";
import { api } from "../api";
import { Alert } from "../components/Alert";
import { Ago, OperatorsOnlyPage, SlateTag, StreamBadge } from "../components/StreamBits";
import { formatBitrate } from "../format";
import { useCursorPages, useInterval, useLoad, usePageVisible, useTitle } from "../hooks";

const PAGE_SIZE = 20;
export const POLL_MS = 3000;

export function StreamsPage() {
  useTitle("Live streams");
  const { cursor, older, newer } = useCursorPages();
  const page = useLoad(() => api.listStreams(cursor, PAGE_SIZE), [cursor]);
  // Live health: poll while the tab is visible, and not at all while it is hidden.
  const visible = usePageVisible();
  useInterval(page.reload, POLL_MS, visible && page.status !== 403);

  if (page.status === 403) return <OperatorsOnlyPage />;
  const items = page.data?.items ?? [];
  return (
    <section aria-labelledby="streams-title">
      <div className="hero row">
        <div>
          <h1 id="streams-title" tabIndex={-1}>
            Live streams
          </h1>
          <p className="muted">Your camera feeds relayed to Kinesis Video Streams, refreshed every few seconds.</p>
        </div>
        <Link to="/live/new" className="btn">
          Add a stream
        </Link>
      </div>
      {page.error && <Alert title="Your streams could not be loaded." message={page.error} onRetry={page.reload} />}
      {page.loading && !page.data && !page.error && (
        <p className="muted" role="status">
          Loading your streams…
        </p>
      )}
      {page.data && items.length === 0 && (
        <div className="empty">
          <p>No streams yet. Add a camera to relay it.</p>
          <Link to="/live/new" className="btn">
            Add your first stream
          </Link>
        </div>
      )}
      {items.length > 0 && (
        <table className="streams" aria-label="Live streams">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Source</th>
              <th scope="col">State</th>
              <th scope="col">Since</th>
              <th scope="col">Reconnects</th>
              <th scope="col">Input</th>
              <th scope="col">Last fragment acknowledged</th>
            </tr>
          </thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.streamId} data-stream-id={s.streamId} aria-label={s.name}>
                <th scope="row" data-label="Name">
                  <Link to={`/live/${encodeURIComponent(s.streamId)}`}>{s.name}</Link>
                </th>
                <td data-label="Source" className="source">
                  <code>{s.sourceUrl}</code>
                </td>
                <td data-label="State">
                  <StreamBadge stream={s} /> <SlateTag stream={s} />
                </td>
                <td data-label="Since">
                  <Ago iso={s.stateSince} />
                </td>
                <td data-label="Reconnects" className="num">
                  {s.reconnects}
                </td>
                <td data-label="Input" className="num" data-testid="bitrate">
                  {formatBitrate(s.inputBitrateBps) || <span className="muted">—</span>}
                </td>
                <td data-label="Last fragment acknowledged" data-testid="last-ack">
                  <Ago iso={s.lastFragmentAckedAt} empty="none yet" />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page.data && (cursor || page.data.nextCursor) && (
        <nav className="pager" aria-label="Pages">
          <button type="button" className="btn ghost" onClick={newer} disabled={!cursor}>
            ← Newer
          </button>
          <button
            type="button"
            className="btn ghost"
            onClick={() => page.data?.nextCursor && older(page.data.nextCursor)}
            disabled={!page.data.nextCursor}
          >
            Older →
          </button>
        </nav>
      )}
    </section>
  );
}
