import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import { ApiError, api, describeError } from "../api";
import { Alert, Notice } from "../components/Alert";
import { Field } from "../components/Field";
import { RecordFields, recordBody, recordForm, type RecordErrors } from "../components/RecordingBits";
import { OperatorsOnlyPage } from "../components/StreamBits";
import { useSession, useTitle } from "../hooks";
import { isOperator } from "../operator";
import type { VideoMode } from "../types";

const MODES: { value: VideoMode; label: string; help: string }[] = [
  { value: "auto", label: "Auto", help: "Relay H.264 as it comes; transcode any other codec." },
  { value: "passthrough", label: "Passthrough", help: "Never re-encode (the camera must send H.264)." },
  { value: "transcode", label: "Transcode", help: "Always decode and encode: steadier output, more CPU." },
];

type FieldName = "name" | "sourceUrl" | "kvsStreamName" | "video" | keyof RecordErrors;
type Errors = Partial<Record<FieldName | "form", string>>;

/** The API's 400 names the field it is about ("sourceUrl host … is link-local"; "name: …"): put
 * each part of the message next to its field, and anything else above the form. */
export function errorsByField(message: string): Errors {
  const out: Errors = {};
  for (const part of message.split("; ")) {
    const field = /^(name|sourceUrl|kvsStreamName|video|retentionDays|recordObjectStore|recordWebhookUrl|recordRenditions)\b/.exec(
      part,
    )?.[1] as FieldName | undefined;
    const key = field ?? "form";
    out[key] = out[key] ? `${out[key]}; ${part}` : part;
  }
  return out;
}

// rtsp(s)://user:password@host/…: the password is typed into the URL and split off by the API.
const HAS_PASSWORD = /^rtsps?:\/\/[^/@?#]*:[^/@?#]*@/i;

export function NewStreamPage() {
  useTitle("Add a stream");
  const navigate = useNavigate();
  const operator = isOperator(useSession());
  const [name, setName] = useState("");
  const [sourceUrl, setSourceUrl] = useState("");
  const [kvsStreamName, setKvsStreamName] = useState("");
  const [video, setVideo] = useState<VideoMode>("auto");
  const [recording, setRecording] = useState(recordForm());
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const [forbidden, setForbidden] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  useEffect(() => {
    // Take the keyboard to the first field the API refused, whose message its description reads out.
    form.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [errors]);

  if (!operator || forbidden) return <OperatorsOnlyPage />;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const checked = recordBody(recording);
    if ("errors" in checked) {
      setErrors(checked.errors);
      return;
    }
    setBusy(true);
    setErrors({});
    try {
      const created = await api.createStream({
        name: name.trim(),
        sourceUrl: sourceUrl.trim(),
        video,
        ...(kvsStreamName.trim() ? { kvsStreamName: kvsStreamName.trim() } : {}),
        ...checked.body,
      });
      // The webhook's signing secret is in this answer only: the stream page shows it once.
      navigate(`/live/${encodeURIComponent(created.streamId)}`, {
        state: created.recordWebhookSecret ? { webhookSecret: created.recordWebhookSecret } : undefined,
      });
    } catch (err) {
      if (err instanceof ApiError && err.status === 403) setForbidden(true);
      else if (err instanceof ApiError && err.status === 400) setErrors(errorsByField(err.message));
      else setErrors({ form: describeError(err) });
      setBusy(false);
    }
  };

  return (
    <section className="narrow" aria-labelledby="new-stream-title">
      <p>
        <Link to="/live">← Live streams</Link>
      </p>
      <h1 id="new-stream-title" tabIndex={-1}>
        Add a stream
      </h1>
      <p className="muted">Register a camera feed. It stays stopped until you start it.</p>
      <div className="upload-card">
        {errors.form && <Alert title="The stream was not created." message={errors.form} />}
        <form ref={form} className="form" onSubmit={submit} noValidate>
          <Field
            label="Name"
            required
            maxLength={200}
            value={name}
            error={errors.name}
            onChange={(e) => setName(e.target.value)}
          />
          <Field
            label="Source URL"
            required
            inputMode="url"
            autoComplete="off"
            spellCheck={false}
            placeholder="rtsp://user:password@camera.example/stream1"
            value={sourceUrl}
            error={errors.sourceUrl}
            hint="An HLS playlist (http(s)://…/index.m3u8), an RTSP camera (rtsp(s)://[user:password@]host[:port]/…) or an SRT caller (srt://host:port?…)."
            onChange={(e) => setSourceUrl(e.target.value)}
          />
          {HAS_PASSWORD.test(sourceUrl.trim()) && (
            <Notice>
              <strong>The password in this URL</strong> is split off and stored encrypted. It is never shown
              again, not even to you: to change it, edit the source while the stream is stopped.
            </Notice>
          )}
          <Field
            label="KVS stream name (optional)"
            maxLength={256}
            autoComplete="off"
            spellCheck={false}
            placeholder="reelay-…"
            value={kvsStreamName}
            error={errors.kvsStreamName}
            hint="The Kinesis Video Streams stream to write to; it must start with reelay-. Leave empty for reelay-<stream id>."
            onChange={(e) => setKvsStreamName(e.target.value)}
          />
          <fieldset className="choices" aria-describedby={errors.video ? "video-error" : undefined}>
            <legend>Video</legend>
            {MODES.map((m) => (
              <label key={m.value} className="choice">
                <input
                  type="radio"
                  name="video"
                  value={m.value}
                  checked={video === m.value}
                  onChange={() => setVideo(m.value)}
                />
                <span>
                  <strong>{m.label}</strong> <span className="hint">{m.help}</span>
                </span>
              </label>
            ))}
            {errors.video && (
              <p id="video-error" className="field-error">
                {errors.video}
              </p>
            )}
          </fieldset>
          <RecordFields value={recording} onChange={setRecording} errors={errors} />
          <div className="actions">
            <button type="submit" className="btn" disabled={busy}>
              {busy ? "Creating…" : "Create stream"}
            </button>
            <Link to="/live" className="btn ghost">
              Cancel
            </Link>
          </div>
        </form>
      </div>
    </section>
  );
}
