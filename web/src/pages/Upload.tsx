import { useEffect, useRef, useState, type DragEvent, type FormEvent } from "react";
import { Link } from "react-router";
import { Alert } from "../components/Alert";
import { Field } from "../components/Field";
import { VisibilitySelect } from "../components/VisibilitySelect";
import { formatBytes, formatEta } from "../format";
import { useTitle } from "../hooks";
import type { Visibility } from "../types";
import { Upload, type UploadState } from "../upload";

function titleFrom(fileName: string): string {
  return fileName.replace(/\.[^.]+$/, "").replace(/[_-]+/g, " ").trim() || "Untitled video";
}

export function UploadPage() {
  useTitle("Upload");
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [visibility, setVisibility] = useState<Visibility>("public");
  const [dragging, setDragging] = useState(false);
  const [state, setState] = useState<UploadState | null>(null);
  const upload = useRef<Upload | null>(null);
  const input = useRef<HTMLInputElement>(null);

  // Leaving the page mid-upload cancels it rather than leaving a half-sent video behind; closing
  // the tab asks first.
  useEffect(() => () => void (upload.current?.state.phase === "uploading" && upload.current.cancel()), []);
  useEffect(() => {
    if (state?.phase !== "uploading" && state?.phase !== "interrupted") return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [state?.phase]);

  const choose = (f: File | null | undefined) => {
    if (!f) return;
    setFile(f);
    if (!name) setName(titleFrom(f.name));
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    choose(e.dataTransfer.files?.[0]);
  };
  const start = (e: FormEvent) => {
    e.preventDefault();
    if (!file) return;
    const u = new Upload(file, { displayName: name.trim() || titleFrom(file.name), description, visibility }, setState);
    upload.current = u;
    setState(u.state);
    void u.start();
  };
  const reset = () => {
    upload.current = null;
    setState(null);
    setFile(null);
    setName("");
    setDescription("");
  };

  const busy = state && ["starting", "uploading", "completing"].includes(state.phase);
  const percent = state && state.total ? Math.floor((state.loaded / state.total) * 100) : 0;

  return (
    <section className="narrow" aria-labelledby="upload-title">
      <h1 id="upload-title" tabIndex={-1}>
        Upload a video
      </h1>
      {!state || state.phase === "cancelled" || state.phase === "failed" ? (
        <form className="form" onSubmit={start}>
          {state?.message && <Alert message={state.message} />}
          <div
            className={`dropzone${dragging ? " dragging" : ""}`}
            onDragOver={(e) => {
              e.preventDefault();
              setDragging(true);
            }}
            onDragLeave={() => setDragging(false)}
            onDrop={onDrop}
          >
            <p>{file ? <strong>{file.name}</strong> : "Drop a video file here"}</p>
            <p className="muted small">{file ? formatBytes(file.size) : "or"}</p>
            {/* The input comes first so its keyboard focus can ring the label that stands in for it. */}
            <input
              ref={input}
              id="file-input"
              className="visually-hidden-input"
              type="file"
              accept="video/*"
              onChange={(e) => choose(e.target.files?.[0])}
            />
            <label className="btn ghost" htmlFor="file-input">
              {file ? "Choose another file" : "Choose a file"}
            </label>
          </div>
          <Field label="Title" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />
          <Field
            label="Description"
            multiline
            maxLength={5000}
            value={description}
            onChange={(e) => setDescription(e.target.value)}
          />
          <VisibilitySelect value={visibility} onChange={setVisibility} />
          <button type="submit" className="btn wide" disabled={!file}>
            Upload
          </button>
        </form>
      ) : (
        <div className="upload-card">
          <p>
            <strong>{file?.name}</strong> <span className="muted">({formatBytes(state.total)})</span>
          </p>
          <progress
            className="bar big"
            max={100}
            value={percent}
            aria-label="Upload progress"
            aria-valuenow={percent}
            data-testid="upload-progress"
          />
          <p className="upload-stats" aria-live="polite">
            <span data-testid="upload-percent">{percent} %</span>
            {state.phase === "uploading" && (
              <>
                {" · "}
                {formatBytes(state.bytesPerSecond)}/s · {formatEta(state.secondsLeft)}
              </>
            )}
            {state.partsTotal > 1 && (
              <>
                {" · "}
                {state.partsDone} of {state.partsTotal} parts
              </>
            )}
          </p>
          <p role="status" className="upload-phase">
            {state.phase === "starting" && "Preparing the upload…"}
            {state.phase === "uploading" && "Uploading…"}
            {state.phase === "completing" && "Finishing the upload…"}
            {state.phase === "done" && "Upload complete. Reelay is now processing your video."}
          </p>
          {state.phase === "interrupted" && <Alert title="Upload interrupted" message={state.message ?? ""} />}
          <div className="actions">
            {state.phase === "interrupted" && (
              <button type="button" className="btn" onClick={() => void upload.current?.resume()}>
                Resume upload
              </button>
            )}
            {(busy || state.phase === "interrupted") && (
              <button type="button" className="btn ghost" onClick={() => void upload.current?.cancel()}>
                Cancel upload
              </button>
            )}
            {state.phase === "done" && (
              <>
                <Link className="btn" to="/my">
                  Go to my videos
                </Link>
                <button type="button" className="btn ghost" onClick={reset}>
                  Upload another
                </button>
              </>
            )}
          </div>
        </div>
      )}
    </section>
  );
}
