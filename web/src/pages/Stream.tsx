import { useState, type FormEvent } from "react";
import { Link, useLocation, useNavigate, useParams } from "react-router";
import { ApiError, api, describeError } from "../api";
import { Alert, Notice } from "../components/Alert";
import { Field } from "../components/Field";
import {
  RecordFields,
  RecordingsPanel,
  recordBody,
  recordForm,
  type RecordErrors,
} from "../components/RecordingBits";
import { Ago, Fact, OperatorsOnlyPage, SlateTag, StreamBadge } from "../components/StreamBits";
import { formatBitrate, formatDateTime } from "../format";
import { useInterval, useLoad, usePageVisible, useTitle } from "../hooks";
import type { Stream } from "../types";
import { errorsByField } from "./StreamNew";
import { NotFoundPage } from "./NotFound";

type Pending = "starting" | "stopping" | null;

/** Whether the polled stream has caught up with what the person asked for. */
function settled(s: Stream, pending: Pending): boolean {
  if (pending === "starting") return s.state === "running" || s.state === "reconnecting" || s.state === "failed";
  if (pending === "stopping") return s.state === "stopped" || s.state === "failed";
  return true;
}

export function StreamPage() {
  const { streamId = "" } = useParams();
  const navigate = useNavigate();
  const createdSecret = (useLocation().state as { webhookSecret?: string } | null)?.webhookSecret ?? null;
  const loaded = useLoad(() => api.getStream(streamId), [streamId]);
  const [pending, setPending] = useState<Pending>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const visible = usePageVisible();
  const s = loaded.data;
  useTitle(s?.name ?? "Stream");
  useInterval(loaded.reload, pending ? 1000 : 2000, visible && loaded.status !== 403 && loaded.status !== 404);
  // The optimistic word stays until the polled state shows the change happened.
  const shown: Pending = s && pending && !settled(s, pending) ? pending : null;

  if (loaded.status === 403) return <OperatorsOnlyPage />;
  if (loaded.status === 404) return <NotFoundPage what="stream" />;
  if (!s) {
    return loaded.error ? (
      <Alert title="This stream could not be loaded." message={loaded.error} onRetry={loaded.reload} />
    ) : (
      <p className="muted" role="status">
        Loading…
      </p>
    );
  }

  const act = async (what: "start" | "stop") => {
    setError(null);
    setBusy(true);
    setPending(what === "start" ? "starting" : "stopping");
    try {
      await (what === "start" ? api.startStream(s.streamId) : api.stopStream(s.streamId));
      loaded.reload();
    } catch (err) {
      setPending(null);
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    setError(null);
    setBusy(true);
    try {
      await api.deleteStream(s.streamId);
      navigate("/live", { replace: true });
    } catch (err) {
      setError(describeError(err));
      setBusy(false);
    }
  };
  const running = s.desiredState === "running";
  const startOff = busy || !!shown || (running && s.state !== "failed");
  const stopOff = busy || !!shown || (!running && s.state === "stopped");

  return (
    <article className="stream-page" aria-labelledby="stream-title">
      <p>
        <Link to="/live">← Live streams</Link>
      </p>
      <div className="hero row">
        <div>
          <h1 id="stream-title" tabIndex={-1}>
            {s.name}
          </h1>
          <p className="muted stream-sub">
            {/* A live region: a screen reader hears the state change (the badge changes only then). */}
            <span role="status">
              <StreamBadge stream={s} pending={shown} /> <SlateTag stream={s} />
            </span>
            <span>
              since <Ago iso={s.stateSince} />
            </span>
          </p>
        </div>
        <div className="actions">
          {/* aria-disabled, not disabled: the button keeps the keyboard focus while the stream changes. */}
          <button
            type="button"
            className="btn"
            onClick={() => !startOff && act("start")}
            aria-disabled={startOff}
          >
            Start
          </button>
          <button type="button" className="btn ghost" onClick={() => !stopOff && act("stop")} aria-disabled={stopOff}>
            Stop
          </button>
        </div>
      </div>
      {error && <Alert message={error} />}
      {loaded.error && <Notice>Live updates paused: {loaded.error}</Notice>}

      <div className="panels">
        <section className="panel" aria-labelledby="health-title">
          <h2 id="health-title">Health</h2>
          <dl className="facts" data-testid="health">
            <Fact term="Desired state">{s.desiredState}</Fact>
            <Fact term="Actual state">{s.state}</Fact>
            <Fact term="State since">
              <Ago iso={s.stateSince} /> <Exact iso={s.stateSince} />
            </Fact>
            <Fact term="Current outage">
              {s.outageCause ? (
                <>
                  {s.outageCause}, since <Ago iso={s.outageSince} />
                </>
              ) : (
                <span className="muted">none</span>
              )}
            </Fact>
            <Fact term="Slate to KVS">
              {s.slateOn ? (
                <>
                  “camera offline” since <Ago iso={s.slateSince} /> <Exact iso={s.slateSince} />
                </>
              ) : (
                <span className="muted">off</span>
              )}
              {(s.slateFragmentsPersisted ?? 0) > 0 && (
                <span className="muted">
                  {" "}
                  · {s.slateFragmentsPersisted} slate fragment{s.slateFragmentsPersisted === 1 ? "" : "s"} persisted
                </span>
              )}
            </Fact>
            <Fact term="Reconnects">{s.reconnects}</Fact>
            <Fact term="Input bitrate">{formatBitrate(s.inputBitrateBps) || <span className="muted">—</span>}</Fact>
            <Fact term="Last fragment acknowledged">
              <Ago iso={s.lastFragmentAckedAt} empty="none yet" /> <Exact iso={s.lastFragmentAckedAt} />
            </Fact>
            <Fact term="Last fragment number">
              {s.lastFragmentNumber ? <code className="wrap">{s.lastFragmentNumber}</code> : <span className="muted">—</span>}
            </Fact>
            <Fact term="Last fragment timecode">
              {s.lastFragmentTimecode != null ? `${s.lastFragmentTimecode} ms` : <span className="muted">—</span>}
            </Fact>
            <Fact term="Credentials expire">
              <Ago iso={s.credentialsExpireAt} /> <Exact iso={s.credentialsExpireAt} />
            </Fact>
          </dl>
        </section>

        <section className="panel" aria-labelledby="task-title">
          <h2 id="task-title">Relay task</h2>
          {s.task ? (
            <dl className="facts">
              <Fact term="Task id">
                <code className="wrap">{s.task.taskId}</code>
              </Fact>
              <Fact term="Started">
                <Ago iso={s.task.startedAt} />
              </Fact>
              <Fact term="Last heartbeat">
                <Ago iso={s.task.heartbeatAt} />
              </Fact>
              <Fact term="Lease expires">
                <Ago iso={s.task.leaseExpiresAt} />
              </Fact>
            </dl>
          ) : (
            <p className="muted">No relay task holds this stream.</p>
          )}
        </section>

        <section className="panel" aria-labelledby="source-title">
          <h2 id="source-title">Source</h2>
          <dl className="facts">
            <Fact term="URL">
              <code className="wrap">{s.sourceUrl}</code>
            </Fact>
            <Fact term="Protocol">{s.sourceProtocol}</Fact>
            <Fact term="Stored secrets">
              {s.sourceSecrets.length ? (
                <>
                  {s.sourceSecrets.join(", ")} <span className="muted small">(encrypted, never shown)</span>
                </>
              ) : (
                <span className="muted">none</span>
              )}
            </Fact>
            <Fact term="KVS stream">
              <code className="wrap">{s.kvsStreamName}</code>
            </Fact>
            <Fact term="Video">{s.video}</Fact>
            <Fact term="Created">
              <Ago iso={s.createdAt} />
            </Fact>
          </dl>
        </section>
      </div>

      <RecordingsPanel stream={s} />
      <RecordSettingsPanel stream={s} onDone={loaded.reload} firstSecret={createdSecret} />

      <section className="panel" aria-labelledby="manage-title">
        <h2 id="manage-title">Manage</h2>
        <Rename stream={s} onDone={loaded.reload} />
        <div className="actions">
          {confirming ? (
            <>
              <span className="confirm-text">Delete “{s.name}”? A running stream is stopped first.</span>
              <button type="button" className="btn danger small" onClick={remove} disabled={busy}>
                Yes, delete it
              </button>
              <button type="button" className="btn ghost small" onClick={() => setConfirming(false)} autoFocus>
                Keep it
              </button>
            </>
          ) : (
            <button type="button" className="btn ghost small" onClick={() => setConfirming(true)}>
              Delete stream
            </button>
          )}
        </div>
      </section>
    </article>
  );
}

function Exact({ iso }: { iso: string | null | undefined }) {
  return iso ? <span className="muted small">({formatDateTime(iso)})</span> : null;
}

function Rename({ stream, onDone }: { stream: Stream; onDone: () => void }) {
  const [name, setName] = useState(stream.name);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.renameStream(stream.streamId, name.trim());
      onDone();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="form compact rename" onSubmit={save}>
      <Field label="Stream name" required maxLength={200} value={name} error={error} onChange={(e) => setName(e.target.value)} />
      <div className="actions">
        <button type="submit" className="btn small" disabled={busy || !name.trim() || name.trim() === stream.name}>
          Rename
        </button>
      </div>
    </form>
  );
}

/** The stream's recording settings: record on/off, renditions, retention, store, webhook. Only what
 * changed is sent; the API refuses store, webhook and rendition changes while the stream runs. */
function RecordSettingsPanel({
  stream,
  onDone,
  firstSecret,
}: {
  stream: Stream;
  onDone: () => void;
  firstSecret: string | null;
}) {
  const saved = recordForm(stream);
  const [form, setForm] = useState(saved);
  const [errors, setErrors] = useState<RecordErrors & { form?: string }>({});
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const [secret, setSecret] = useState<string | null>(firstSecret);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setDone(null);
    const checked = recordBody(form, saved);
    if ("errors" in checked) {
      setErrors(checked.errors);
      return;
    }
    if (!Object.keys(checked.body).length) {
      setErrors({});
      setDone("Nothing to save: the settings are unchanged.");
      return;
    }
    setBusy(true);
    setErrors({});
    try {
      const updated = await api.updateRecording(stream.streamId, checked.body);
      setForm(recordForm(updated));
      setSecret(updated.recordWebhookSecret ?? null);
      setDone("Recording settings saved.");
      onDone();
    } catch (err) {
      if (err instanceof ApiError && err.status === 400) setErrors(errorsByField(err.message));
      else setErrors({ form: describeError(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="panel" aria-labelledby="record-settings-title">
      <h2 id="record-settings-title">Recording settings</h2>
      {secret && (
        <Notice>
          <strong>Webhook signing secret</strong> (shown this once, keep it): <code className="wrap">{secret}</code>
        </Notice>
      )}
      <form className="form compact record-settings" onSubmit={save} noValidate>
        {errors.form && <Alert title="The settings were not saved." message={errors.form} />}
        <RecordFields value={form} onChange={setForm} errors={errors} />
        <div className="actions">
          <button type="submit" className="btn small" disabled={busy}>
            {busy ? "Saving…" : "Save recording settings"}
          </button>
          {done && (
            <span role="status" className="muted">
              {done}
            </span>
          )}
        </div>
      </form>
    </section>
  );
}
