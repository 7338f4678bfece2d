import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useParams } from "react-router";
import { ApiError, api, backoff, describeError, sleep } from "../api";
import { Alert, Notice } from "../components/Alert";
import { Field } from "../components/Field";
import { Player } from "../components/Player";
import { SessionBadge } from "../components/RecordingBits";
import { Ago, Fact, OperatorsOnlyPage } from "../components/StreamBits";
import { formatBytes, formatDateTime, formatDuration } from "../format";
import { useInterval, useLoad, usePageVisible, useTitle } from "../hooks";
import type { RecordingExport, RecordingSession } from "../types";
import { NotFoundPage } from "./NotFound";

const SETTLED = ["ready", "failed", "expired"];
const MAX_EXPORT_SECONDS = 6 * 3600;

/** A recording session: the live playlist while it records, the finished video once ready, a
 * "finalize now" button, and an MP4 export of a time range. */
export function SessionPage() {
  const { streamId = "", sessionId = "" } = useParams();
  const loaded = useLoad(() => api.getSession(streamId, sessionId), [streamId, sessionId]);
  const stream = useLoad(() => api.getStream(streamId), [streamId]);
  const s = loaded.data;
  const visible = usePageVisible();
  const [pollFast, setPollFast] = useState(false);
  useInterval(
    loaded.reload,
    pollFast ? 1000 : 2000,
    visible && !!s && !SETTLED.includes(s.state) && loaded.status !== 404 && loaded.status !== 403,
  );
  const when = s ? formatDateTime(s.startedAt) : "";
  useTitle(s ? `Recording from ${when}` : "Recording");

  if (loaded.status === 403) return <OperatorsOnlyPage />;
  if (loaded.status === 404) return <NotFoundPage what="recording" />;
  if (!s) {
    return loaded.error ? (
      <Alert title="This recording could not be loaded." message={loaded.error} onRetry={loaded.reload} />
    ) : (
      <p className="muted" role="status">
        Loading…
      </p>
    );
  }
  const back = `/live/${encodeURIComponent(streamId)}`;
  return (
    <article className="stream-page" aria-labelledby="session-title">
      <p>
        <Link to={back}>← {stream.data?.name ?? "The stream"}</Link>
      </p>
      <div className="hero row">
        <div>
          <h1 id="session-title" tabIndex={-1}>
            Recording from {when}
          </h1>
          <p className="muted stream-sub">
            <span role="status">
              <SessionBadge session={s} />
            </span>
            <span data-testid="session-duration">{formatDuration(s.durationSeconds) || "no media yet"}</span>
            {stream.data && <span>of {stream.data.name}</span>}
          </p>
        </div>
        <Finalize session={s} onStarted={() => (setPollFast(true), loaded.reload())} />
      </div>
      {loaded.error && <Notice>Live updates paused: {loaded.error}</Notice>}
      {s.state === "failed" && (
        <Alert
          title="This recording could not be turned into a video."
          message={`${s.failureReason ?? "No reason was given."} You can try to finalize it again.`}
        />
      )}

      <Playback session={s} />

      <div className="panels">
        <section className="panel" aria-labelledby="facts-title">
          <h2 id="facts-title">Session</h2>
          <dl className="facts">
            <Fact term="State">{s.state}</Fact>
            <Fact term="Started">
              <Ago iso={s.startedAt} /> <span className="muted small">({formatDateTime(s.startedAt)})</span>
            </Fact>
            <Fact term="Ended">
              {s.endedAt ? (
                <>
                  <Ago iso={s.endedAt} />
                  {s.endReason && <span className="muted small"> ({s.endReason})</span>}
                </>
              ) : (
                <span className="muted">still recording</span>
              )}
            </Fact>
            <Fact term="Duration">{formatDuration(s.durationSeconds) || <span className="muted">—</span>}</Fact>
            <Fact term="Renditions">
              {s.renditions.length ? s.renditions.map((r) => r.name).join(", ") : <span className="muted">—</span>}
            </Fact>
            <Fact term="Reconnects kept in it">{s.discontinuities}</Fact>
            <Fact term="Workflow step">{s.workflowState ?? <span className="muted">—</span>}</Fact>
          </dl>
        </section>
        <section className="panel" aria-labelledby="store-title">
          <h2 id="store-title">Storage</h2>
          <dl className="facts">
            <Fact term="Store">{s.store ? <code className="wrap">{s.store}</code> : <span className="muted">—</span>}</Fact>
            <Fact term="Chosen by">{s.storeSource ?? <span className="muted">—</span>}</Fact>
            <Fact term="Webhook fallback">{s.storeFallbackReason ?? <span className="muted">none</span>}</Fact>
            <Fact term="Writers">{s.writerCount}</Fact>
          </dl>
        </section>
      </div>

      <ExportPanel session={s} streamId={streamId} />
    </article>
  );
}

/** The live EVENT playlist while recording; the video the session became once it is ready. */
function Playback({ session: s }: { session: RecordingSession }) {
  const video = useLoad(
    () => (s.state === "ready" && s.videoId ? api.getVideo(s.videoId) : Promise.resolve(null)),
    [s.state, s.videoId],
  );
  if (s.state === "recording" && s.storeSource && s.storeSource !== "default") {
    // The API serves the live playlist only for the platform's own store (409 not_live otherwise).
    return (
      <section className="panel" aria-labelledby="playback-title">
        <h2 id="playback-title">Live</h2>
        <p className="muted" role="status">
          This session records to the stream's own object store ({s.storeSource === "webhook" ? "chosen by its webhook" : "its recording store"}),
          which the platform does not serve live. It plays here once it is finalized.
        </p>
      </section>
    );
  }
  if (s.state === "recording" && s.livePlaylistUrl) {
    return (
      <section className="panel" aria-labelledby="playback-title">
        <h2 id="playback-title">Live</h2>
        <Player
          key="live"
          video={{
            videoId: `live-${s.sessionId}`,
            displayName: `live recording ${s.sessionId}`,
            playbackUrl: s.livePlaylistUrl,
            thumbnailUrl: null,
          }}
        />
        <p className="muted small">The recording as it is written, from its start; it grows while the stream runs.</p>
      </section>
    );
  }
  if (s.state === "ready" && s.videoId) {
    return (
      <section className="panel" aria-labelledby="playback-title">
        <h2 id="playback-title">Video</h2>
        {video.error && <Alert title="The video could not be loaded." message={video.error} onRetry={video.reload} />}
        {video.data && <Player key={video.data.videoId} video={video.data} />}
        <p>
          <Link to={`/watch/${encodeURIComponent(s.videoId)}`}>Open the video's page</Link>
        </p>
      </section>
    );
  }
  const why: Record<string, string> = {
    recording: "The live playlist appears with the first stored segment.",
    ended: "The recording has ended; it becomes a video within a minute, or now with “Finalize now”.",
    finalizing: "Turning the recording into a video…",
    failed: "There is no video: finalizing failed.",
    expired: "Retention deleted this recording's media.",
  };
  return (
    <section className="panel" aria-labelledby="playback-title">
      <h2 id="playback-title">Playback</h2>
      <p className="muted" role="status">
        {why[s.state] ?? s.state}
      </p>
    </section>
  );
}

function Finalize({ session: s, onStarted }: { session: RecordingSession; onStarted: () => void }) {
  const [busy, setBusy] = useState(false);
  const [said, setSaid] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  if (!["recording", "ended", "failed", "finalizing"].includes(s.state)) return null;
  const off = busy || s.state === "finalizing";
  const go = async () => {
    if (off) return;
    setBusy(true);
    setError(null);
    setSaid(null);
    try {
      const answer = await api.finalizeSession(s.streamId, s.sessionId);
      setSaid(answer.started ? "Finalizing started." : answer.state === "ready" ? "Already finalized." : "Already finalizing.");
      onStarted();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="finalize">
      <div className="actions">
        {/* aria-disabled keeps the focus on the button while the session changes */}
        <button type="button" className="btn" onClick={go} aria-disabled={off}>
          {s.state === "finalizing" ? "Finalizing…" : s.state === "failed" ? "Finalize again" : "Finalize now"}
        </button>
      </div>
      {said && (
        <p role="status" className="muted small">
          {said}
        </p>
      )}
      {error && <Alert message={error} />}
    </div>
  );
}

/** "90", "1:30", "1:02:03.5" -> seconds; null when it is none of these. */
export function parseTime(text: string): number | null {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const m = /^(?:(\d+):)?([0-5]?\d):([0-5]\d(?:\.\d+)?)$/.exec(t);
  if (!m) return null;
  return Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

type ExportErrors = { start?: string; end?: string; form?: string; lost?: string };

function ExportPanel({ session: s, streamId }: { session: RecordingSession; streamId: string }) {
  const [start, setStart] = useState("0");
  const [end, setEnd] = useState("");
  const [errors, setErrors] = useState<ExportErrors>({});
  const [job, setJob] = useState<RecordingExport | null>(null);
  const [busy, setBusy] = useState(false);
  const stop = useRef<AbortController | null>(null);
  const form = useRef<HTMLFormElement>(null);
  useEffect(() => () => stop.current?.abort(), []);
  useEffect(() => {
    form.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [errors]);
  const duration = s.durationSeconds ?? 0;
  const ready = s.state === "ready";

  const check = (): { from: number; to: number } | ExportErrors => {
    const from = parseTime(start);
    const to = parseTime(end);
    const out: ExportErrors = {};
    if (from === null) out.start = "Give the start as seconds (90) or minutes:seconds (1:30).";
    if (to === null) out.end = "Give the end as seconds (90) or minutes:seconds (1:30).";
    if (from !== null && to !== null) {
      if (to <= from) out.end = "The end must come after the start.";
      else if (to > duration + 0.001) out.end = `The recording lasts ${formatDuration(duration)}: the end must be within it.`;
      else if (to - from > MAX_EXPORT_SECONDS) out.end = "An export may be at most 6 hours long.";
    }
    return Object.keys(out).length || from === null || to === null ? out : { from, to };
  };

  const follow = async (first: RecordingExport, signal: AbortSignal) => {
    // Poll with the API's backoff (no faster than it retries a failure), resetting when it moves.
    let current = first;
    for (let n = 0; current.state === "running"; n++) {
      await sleep(Math.max(1000, backoff(Math.min(n, 3))), signal);
      current = await api.getExport(streamId, s.sessionId, current.exportId);
      setJob(current);
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const checked = check();
    if (!("from" in checked)) {
      setErrors(checked as ExportErrors);
      return;
    }
    setErrors({});
    setBusy(true);
    setJob(null);
    stop.current?.abort();
    const controller = new AbortController();
    stop.current = controller;
    let created: RecordingExport | null = null;
    try {
      created = await api.createExport(streamId, s.sessionId, checked.from, checked.to);
      setJob(created);
      await follow(created, controller.signal);
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") return;
      if (created) setErrors({ lost: describeError(err) });
      else if (err instanceof ApiError && (err.status === 400 || err.code === "exports_unavailable"))
        setErrors(err.status === 400 ? { end: err.message } : { form: err.message });
      else setErrors({ form: describeError(err) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="export-title">
      <h2 id="export-title">Export an MP4</h2>
      {!ready ? (
        <p className="muted">A time range of the recording can be exported as an MP4 once it is ready.</p>
      ) : (
        <>
          <p className="muted">
            Times from the start of the recording ({formatDuration(duration)} long). Cuts fall on segment boundaries, so
            the file may start a segment (about 2 s) early and end one late.
          </p>
          <form ref={form} className="form compact export-form" onSubmit={submit} noValidate>
            {errors.form && <Alert title="The export did not start." message={errors.form} />}
            <div className="row-fields">
              <Field
                label="Start"
                inputMode="decimal"
                autoComplete="off"
                value={start}
                error={errors.start}
                hint="seconds or m:ss"
                onChange={(e) => setStart(e.target.value)}
              />
              <Field
                label="End"
                inputMode="decimal"
                autoComplete="off"
                placeholder={formatDuration(duration)}
                value={end}
                error={errors.end}
                hint="seconds or m:ss"
                onChange={(e) => setEnd(e.target.value)}
              />
            </div>
            <div className="actions">
              <button type="submit" className="btn small" disabled={busy}>
                {busy ? "Exporting…" : "Export"}
              </button>
            </div>
          </form>
        </>
      )}
      {job && (
        <div className="export-result" role="status" data-testid="export">
          {job.state === "running" && <p>Exporting {formatDuration(job.start)} to {formatDuration(job.end)}…</p>}
          {job.state === "ready" && job.downloadUrl && (
            <p>
              Export ready: <a href={job.downloadUrl} download>
                Download the MP4
              </a>{" "}
              <span className="muted small">
                ({formatDuration(job.durationSeconds ?? job.end - job.start)}
                {job.sizeBytes ? `, ${formatBytes(job.sizeBytes)}` : ""})
              </span>
            </p>
          )}
          {errors.lost && (
            <Alert title="The export's progress could not be read; it may still finish." message={errors.lost} />
          )}
          {job.state === "failed" && (
            <Alert title="The export failed." message={job.failureReason ?? "No reason was given."} />
          )}
        </div>
      )}
    </section>
  );
}
