import type { ReactNode } from "react";
import { formatDateTime, formatRelative } from "../format";
import { StatusPage } from "../pages/NotFound";
import type { Stream, StreamState } from "../types";

// Each state has its own word and its own shape, so the badge never relies on colour alone
// (the colours are from the Okabe-Ito palette, told apart with the common colour blindnesses).
const SHAPES: Record<StreamState, string> = {
  running: "●",
  starting: "◔",
  reconnecting: "↻",
  stopping: "◕",
  stopped: "■",
  failed: "✕",
};

/** The stream's state; `pending` is the optimistic word shown between a click and the polled truth. */
export function StreamBadge({ stream, pending }: { stream: Stream; pending?: "starting" | "stopping" | null }) {
  const state: StreamState = pending ?? stream.state;
  const label = pending ? `${pending}…` : state;
  return (
    <span className={`badge stream-badge stream-${state}`} data-testid="stream-state">
      <span aria-hidden="true" className="shape">
        {SHAPES[state]}
      </span>
      {label}
      {!pending && state === "reconnecting" && stream.outageCause && (
        <span className="cause">: {stream.outageCause}</span>
      )}
    </span>
  );
}

/** Whether KVS is fed the "camera offline" slate (transcode mode, the camera down): a word and a shape,
 * like the state badge, so it never relies on colour alone. Nothing while the slate is off. */
export function SlateTag({ stream }: { stream: Stream }) {
  if (!stream.slateOn) return null;
  return (
    <span className="badge slate-badge" data-testid="slate" title="KVS gets the “camera offline” slate">
      <span aria-hidden="true" className="shape">
        ▨
      </span>
      slate
    </span>
  );
}

/** A time as "12 s ago", with the exact time on hover and for machines. */
export function Ago({ iso, empty = "—" }: { iso: string | null | undefined; empty?: string }) {
  if (!iso) return <span className="muted">{empty}</span>;
  return (
    <time dateTime={iso} title={formatDateTime(iso)}>
      {formatRelative(iso)}
    </time>
  );
}

/** What a person who is not an operator sees on the operator pages (the API answers them 403). */
export function OperatorsOnlyPage() {
  return (
    <StatusPage
      code={403}
      title="Operators only"
      body="Live streams are managed by operators. Ask an administrator to add you to the operators group; if they just did, log out and log in again so your sign-in carries it."
      to="/"
      back="Browse videos"
    />
  );
}

/** One term of a page's facts list (a <dl>): tests find the value by data-fact. */
export function Fact({ term, children }: { term: string; children: ReactNode }) {
  return (
    <div className="fact">
      <dt>{term}</dt>
      <dd data-fact={term}>{children}</dd>
    </div>
  );
}
