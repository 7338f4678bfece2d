// Every API call goes through `request`: retries with backoff on network errors and 5xx, errors
// turned into sentences, the ID token attached and refreshed, and a 401 sent to the login page.
import { config } from "./config";
import { session } from "./session";
import type {
  FinalizeAnswer,
  NewStream,
  Page,
  RecordingExport,
  RecordingSession,
  RecordSettings,
  Stream,
  Tokens,
  UploadAnswer,
  Video,
  Visibility,
} from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** What to tell a person, in words, for any error thrown by a call. */
export function describeError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 0) return "Could not reach Reelay. Check your connection and try again.";
    if (e.status >= 500)
      return `Reelay is having trouble right now (error ${e.status}). Please try again in a moment.`;
    return e.message || `The request failed (${e.status}).`;
  }
  if (e instanceof Error) return e.message;
  return "Something went wrong.";
}

export const RETRY = { attempts: 4, baseMs: 300, maxMs: 4000 };

export function backoff(attempt: number): number {
  const ceiling = Math.min(RETRY.maxMs, RETRY.baseMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2); // "equal jitter": never zero, never in step
}

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((ok, fail) => {
    const t = setTimeout(ok, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      fail(new DOMException("aborted", "AbortError"));
    });
  });

interface Options {
  body?: unknown;
  auth?: boolean;
  signal?: AbortSignal;
  retries?: number;
}

async function once(method: string, url: string, opts: Options, token: string | null): Promise<Response> {
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    return await fetch(url, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "network error");
  }
}

async function toError(r: Response): Promise<ApiError> {
  try {
    const body = await r.json();
    if (body && typeof body.message === "string") return new ApiError(r.status, body.error ?? "error", body.message);
  } catch {
    // not JSON (a proxy's HTML page): fall through to the status line
  }
  return new ApiError(r.status, "http_error", `The request failed (${r.status} ${r.statusText}).`);
}

export async function request<T>(method: string, path: string, opts: Options = {}): Promise<T> {
  const url = path.startsWith("http") ? path : `${config().apiUrl}${path}`;
  const attempts = opts.retries ?? RETRY.attempts;
  let refreshed = false;
  for (let attempt = 0; ; attempt++) {
    const token = opts.auth ? await session.idToken() : null;
    if (opts.auth && !token) {
      session.expired();
      throw new ApiError(401, "unauthorized", "Please log in to continue.");
    }
    let response: Response | null = null;
    let failure: ApiError;
    try {
      response = await once(method, url, opts, token);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      failure = e;
    }
    if (response) {
      if (response.ok) {
        if (response.status === 204) return undefined as T;
        return (await response.json()) as T;
      }
      failure = await toError(response);
      if (response.status === 401 && opts.auth) {
        // The token may have expired between the check and the call: refresh once, then give up.
        if (!refreshed && (await session.refresh())) {
          refreshed = true;
          attempt--;
          continue;
        }
        session.expired();
        throw new ApiError(401, "unauthorized", "Your session has ended. Please log in again.");
      }
      if (response.status < 500) throw failure;
    }
    if (attempt + 1 >= attempts) throw failure!;
    await sleep(backoff(attempt), opts.signal);
  }
}

// --- the routes ------------------------------------------------------------------------------
export const api = {
  register: (email: string, password: string) =>
    request<{ userId: string }>("POST", "/auth/register", { body: { email, password } }),
  confirm: (email: string, code: string) =>
    request<{ message: string }>("POST", "/auth/confirm-register", { body: { email, code } }),
  resendCode: (email: string) => request<{ message: string }>("POST", "/auth/resend-code", { body: { email } }),
  login: (email: string, password: string) =>
    request<Tokens>("POST", "/auth/login", { body: { email, password } }),
  refresh: (refreshToken: string) =>
    request<Tokens>("POST", "/auth/refresh", { body: { refreshToken }, retries: 2 }),

  listVideos: (cursor: string | null, limit = 12) =>
    request<Page<Video>>("GET", `/videos?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`),
  getVideo: (id: string) => request<Video>("GET", `/videos/${encodeURIComponent(id)}`),
  // The owner's view: any status or visibility, a private video's playback URL signed.
  getMyVideo: (id: string) => request<Video>("GET", `/me/videos/${encodeURIComponent(id)}`, { auth: true }),
  myVideos: (cursor: string | null, limit = 50) =>
    request<Page<Video>>(
      "GET",
      `/me/videos?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      { auth: true },
    ),
  createUpload: (body: {
    displayName: string;
    description: string;
    contentType: string;
    sizeBytes: number;
    fileName: string;
    visibility: Visibility;
  }) =>
    request<UploadAnswer>("POST", "/videos/upload", { body, auth: true }),
  completeUpload: (completePath: string, uploadId: string, parts: { partNumber: number; etag: string }[]) =>
    request<Video>("POST", `/${completePath.replace(/^\/+/, "")}`, { body: { uploadId, parts }, auth: true }),
  updateVideo: (id: string, changes: { displayName?: string; description?: string; visibility?: Visibility }) =>
    request<Video>("PATCH", `/videos/${encodeURIComponent(id)}`, { body: changes, auth: true }),
  deleteVideo: (id: string) => request<void>("DELETE", `/videos/${encodeURIComponent(id)}`, { auth: true }),

  // Live streams: operators only (the API answers 403 to everyone else).
  listStreams: (cursor: string | null, limit = 20) =>
    request<Page<Stream>>(
      "GET",
      `/streams?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      { auth: true },
    ),
  getStream: (id: string) => request<Stream>("GET", `/streams/${encodeURIComponent(id)}`, { auth: true }),
  createStream: (body: NewStream) => request<Stream>("POST", "/streams", { body, auth: true }),
  renameStream: (id: string, name: string) =>
    request<Stream>("PATCH", `/streams/${encodeURIComponent(id)}`, { body: { name }, auth: true }),
  startStream: (id: string) =>
    request<Stream>("POST", `/streams/${encodeURIComponent(id)}/start`, { auth: true }),
  stopStream: (id: string) => request<Stream>("POST", `/streams/${encodeURIComponent(id)}/stop`, { auth: true }),
  deleteStream: (id: string) => request<void>("DELETE", `/streams/${encodeURIComponent(id)}`, { auth: true }),
  updateRecording: (id: string, changes: Partial<RecordSettings>) =>
    request<Stream>("PATCH", `/streams/${encodeURIComponent(id)}`, { body: changes, auth: true }),

  // A stream's recording sessions (docs/recordings-api.md).
  listSessions: (streamId: string, cursor: string | null, limit = 20) =>
    request<Page<RecordingSession>>(
      "GET",
      `${sessionPath(streamId)}?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      { auth: true },
    ),
  getSession: (streamId: string, sessionId: string) =>
    request<RecordingSession>("GET", sessionPath(streamId, sessionId), { auth: true }),
  // Idempotent on the server: a retried POST cannot start a second workflow.
  finalizeSession: (streamId: string, sessionId: string) =>
    request<FinalizeAnswer>("POST", `${sessionPath(streamId, sessionId)}/finalize`, { auth: true }),
  createExport: (streamId: string, sessionId: string, start: number, end: number) =>
    // Not repeated after a 5xx: each POST makes an export.
    request<RecordingExport>("POST", `${sessionPath(streamId, sessionId)}/exports`, {
      body: { start, end },
      auth: true,
      retries: 1,
    }),
  getExport: (streamId: string, sessionId: string, exportId: string) =>
    request<RecordingExport>(
      "GET",
      `${sessionPath(streamId, sessionId)}/exports/${encodeURIComponent(exportId)}`,
      { auth: true },
    ),
};

function sessionPath(streamId: string, sessionId?: string): string {
  const base = `/streams/${encodeURIComponent(streamId)}/sessions`;
  return sessionId ? `${base}/${encodeURIComponent(sessionId)}` : base;
}
