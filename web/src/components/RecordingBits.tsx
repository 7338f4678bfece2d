// A stream's recordings: the state badge, the sessions panel of the stream page, and the recording
// settings fields shared by "Add a stream" and the stream page (docs/recordings-api.md).
import { useState } from "react";
import { Link } from "react-router";
import { api, describeError } from "../api";
import { formatDateTime, formatDuration } from "../format";
import { useInterval, useLoad, usePageVisible } from "../hooks";
import type { RecordingSession, RecordSettings, SessionState, Stream } from "../types";
import { Alert, Notice } from "./Alert";
import { Field } from "./Field";
import { Ago } from "./StreamBits";

export const RENDITIONS = ["1080p", "720p", "480p", "360p", "240p"] as const;
export const SESSIONS_POLL_MS = 3000;

// A word and a shape per state, never colour alone (as the stream badge).
const SHAPES: Record<SessionState, string> = {
  recording: "●",
  ended: "■",
  finalizing: "◔",
  ready: "✓",
  failed: "✕",
  expired: "⌛",
};

export function SessionBadge({ session }: { session: Pick<RecordingSession, "state"> }) {
  return (
    <span className={`badge stream-badge session-${session.state}`} data-testid="session-state">
      <span aria-hidden="true" className="shape">
        {SHAPES[session.state] ?? "?"}
      </span>
      {session.state}
    </span>
  );
}

export const sessionPath = (streamId: string, sessionId: string) =>
  `/live/${encodeURIComponent(streamId)}/recordings/${encodeURIComponent(sessionId)}`;

/** The stream page's "Recordings" panel: its sessions, newest first, refreshed while visible. */
export function RecordingsPanel({ stream }: { stream: Stream }) {
  const [older, setOlder] = useState<RecordingSession[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [olderError, setOlderError] = useState<string | null>(null);
  const first = useLoad(() => api.listSessions(stream.streamId, null), [stream.streamId]);
  const visible = usePageVisible();
  useInterval(first.reload, SESSIONS_POLL_MS, visible && first.status !== 403 && first.status !== 404);
  const next = older.length ? cursor : (first.data?.nextCursor ?? null);
  const loadOlder = async () => {
    if (!next) return;
    setOlderError(null);
    try {
      const page = await api.listSessions(stream.streamId, next);
      setOlder((o) => [...o, ...page.items]);
      setCursor(page.nextCursor);
    } catch (e) {
      setOlderError(describeError(e));
    }
  };
  const seen = new Set<string>();
  const items = [...(first.data?.items ?? []), ...older].filter((s) => !seen.has(s.sessionId) && seen.add(s.sessionId));

  return (
    <section className="panel" aria-labelledby="recordings-title">
      <h2 id="recordings-title">Recordings</h2>
      {!stream.record && (
        <p className="muted">
          Recording is off for this stream. Turn it on in the recording settings below (while the stream is
          stopped).
        </p>
      )}
      {first.error && !first.data && (
        <Alert title="The recordings could not be loaded." message={first.error} onRetry={first.reload} />
      )}
      {first.error && first.data && <Notice>Live updates paused: {first.error}</Notice>}
      {first.loading && !first.data && !first.error && (
        <p className="muted" role="status">
          Loading recordings…
        </p>
      )}
      {first.data && items.length === 0 && (
        <p className="muted">
          No recordings yet.{stream.record ? " A session starts when the stream runs and media flows." : ""}
        </p>
      )}
      {items.length > 0 && (
        <table className="streams sessions" aria-label="Recordings">
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">State</th>
              <th scope="col">Duration</th>
              <th scope="col">Video</th>
            </tr>
          </thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.sessionId} data-session-id={s.sessionId} aria-label={`Recording from ${formatDateTime(s.startedAt)}`}>
                <th scope="row" data-label="Started">
                  <Link to={sessionPath(stream.streamId, s.sessionId)}>{formatDateTime(s.startedAt)}</Link>{" "}
                  <span className="muted small">
                    (<Ago iso={s.startedAt} />)
                  </span>
                </th>
                <td data-label="State">
                  <SessionBadge session={s} />
                  {s.state === "failed" && s.failureReason && (
                    <p className="field-error" data-testid="failure-reason">
                      {s.failureReason}
                    </p>
                  )}
                </td>
                <td data-label="Duration" className="num" data-testid="duration">
                  {formatDuration(s.durationSeconds) || <span className="muted">—</span>}
                </td>
                <td data-label="Video">
                  {s.state === "ready" && s.videoId ? (
                    <Link to={`/watch/${encodeURIComponent(s.videoId)}`}>Watch the video</Link>
                  ) : s.state === "recording" ? (
                    <Link to={sessionPath(stream.streamId, s.sessionId)}>Watch live</Link>
                  ) : (
                    <span className="muted">{s.state === "expired" ? "deleted by retention" : "not yet"}</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {olderError && <Alert message={olderError} />}
      {next && (
        <div className="actions">
          <button type="button" className="btn ghost small" onClick={loadOlder}>
            Show older recordings
          </button>
        </div>
      )}
    </section>
  );
}

// --- the recording settings form fields ---------------------------------------------------------
export interface RecordForm {
  record: boolean;
  renditions: string[];
  retentionDays: string; // as typed; "" keeps recordings for ever
  store: string;
  webhook: string;
}

export type RecordErrors = Partial<Record<"retentionDays" | "recordObjectStore" | "recordWebhookUrl" | "recordRenditions", string>>;

export function recordForm(stream?: Stream): RecordForm {
  return {
    record: stream?.record ?? false,
    renditions: stream?.recordRenditions ?? [],
    retentionDays: stream?.retentionDays != null ? String(stream.retentionDays) : "",
    store: stream?.recordObjectStore ?? "",
    webhook: stream?.recordWebhookUrl ?? "",
  };
}

const STORE_URL = /^(s3|s3\+https?|file):\/\/\S+$/i;
const WEBHOOK_URL = /^https?:\/\/[^\s/]+\S*$/i;

/** The form's fields as the API wants them, checked first: errors by field, or the request body.
 * With `before` (the stream's saved settings) only the changed fields go, so a running stream's
 * retention can change without touching the settings that must wait for a stop. */
export function recordBody(
  form: RecordForm,
  before?: RecordForm,
): { errors: RecordErrors } | { body: Partial<RecordSettings> } {
  const errors: RecordErrors = {};
  const days = form.retentionDays.trim();
  if (days && !(/^\d+$/.test(days) && +days >= 1 && +days <= 3650))
    errors.retentionDays = "Retention must be a whole number of days from 1 to 3650, or empty to keep recordings.";
  const store = form.store.trim();
  if (store && !STORE_URL.test(store) && store !== before?.store)
    errors.recordObjectStore = "An object store URL starts with s3://, s3+http(s):// or file://.";
  const hook = form.webhook.trim();
  if (hook && !WEBHOOK_URL.test(hook)) errors.recordWebhookUrl = "A webhook URL starts with http:// or https://.";
  if (Object.keys(errors).length) return { errors };
  const body: Partial<RecordSettings> = {};
  if (!before || form.record !== before.record) body.record = form.record;
  const renditions = RENDITIONS.filter((r) => form.renditions.includes(r));
  if (!before || renditions.join() !== before.renditions.join()) body.recordRenditions = renditions;
  if (!before || days !== before.retentionDays) body.retentionDays = days ? +days : null;
  if (store !== (before?.store ?? "")) body.recordObjectStore = store || null;
  if (hook !== (before?.webhook ?? "")) body.recordWebhookUrl = hook || null;
  return { body };
}

/** Record on/off, renditions, retention, store and webhook: labelled, keyboard-operable fields. */
export function RecordFields({
  value,
  onChange,
  errors,
}: {
  value: RecordForm;
  onChange: (v: RecordForm) => void;
  errors: RecordErrors;
}) {
  const set = (patch: Partial<RecordForm>) => onChange({ ...value, ...patch });
  const toggle = (r: string) =>
    set({ renditions: value.renditions.includes(r) ? value.renditions.filter((x) => x !== r) : [...value.renditions, r] });
  return (
    <fieldset className="choices record-fields">
      <legend>Recording</legend>
      <label className="choice">
        <input type="checkbox" checked={value.record} onChange={(e) => set({ record: e.target.checked })} />
        <span>
          <strong>Record this stream</strong>{" "}
          <span className="hint">Each session is stored as HLS and turned into a video when it ends.</span>
        </span>
      </label>
      <fieldset className="choices renditions" aria-describedby={errors.recordRenditions ? "renditions-error" : "renditions-hint"}>
        <legend>Renditions</legend>
        <p id="renditions-hint" className="hint">
          The source is always recorded; tick the encoded renditions to record beside it.
        </p>
        <div className="rendition-boxes">
          {RENDITIONS.map((r) => (
            <label key={r} className="choice">
              <input type="checkbox" checked={value.renditions.includes(r)} onChange={() => toggle(r)} />
              <span>{r}</span>
            </label>
          ))}
        </div>
        {errors.recordRenditions && (
          <p id="renditions-error" className="field-error">
            {errors.recordRenditions}
          </p>
        )}
      </fieldset>
      <Field
        label="Retention (days)"
        inputMode="numeric"
        autoComplete="off"
        placeholder="keep for ever"
        value={value.retentionDays}
        error={errors.retentionDays}
        hint="Recordings older than this are deleted. Leave empty to keep them."
        onChange={(e) => set({ retentionDays: e.target.value })}
      />
      <Field
        label="Object store URL (optional)"
        autoComplete="off"
        spellCheck={false}
        placeholder="s3://KEY:SECRET@eu-west-1/bucket/prefix"
        value={value.store}
        error={errors.recordObjectStore}
        hint="Where the recordings go; empty for the platform's store. The secret is stored encrypted and shown as ***."
        onChange={(e) => set({ store: e.target.value })}
      />
      <Field
        label="Store webhook URL (optional)"
        inputMode="url"
        autoComplete="off"
        spellCheck={false}
        placeholder="https://hooks.example.com/reelay"
        value={value.webhook}
        error={errors.recordWebhookUrl}
        hint="Asked for the store when a session starts (signed with a secret shown once)."
        onChange={(e) => set({ webhook: e.target.value })}
      />
    </fieldset>
  );
}
