// The API's wire shapes (reelay/api/models.py), the parts the front end reads.
export type VideoStatus = "awaiting_upload" | "queued" | "processing" | "ready" | "failed";
export type Visibility = "public" | "unlisted" | "private";

export interface Rendition {
  name: string;
  width: number;
  height: number;
  bandwidth: number;
  codecs: string;
}

export interface Video {
  videoId: string;
  displayName: string;
  description: string;
  status: VideoStatus;
  failureReason: string | null;
  progress: number;
  playable: boolean;
  isTranscoded: boolean;
  durationSeconds: number | null;
  renditions: Rendition[];
  uploadTime: string;
  createdAt: string;
  updatedAt: string;
  playbackUrl: string | null;
  thumbnailUrl: string | null;
  visibility: Visibility;
  unpublished: boolean;
  email?: string;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Tokens {
  idToken: string;
  accessToken: string;
  refreshToken?: string | null;
  expiresIn: number;
}

export interface PartUrl {
  partNumber: number;
  url: string;
}

export interface UploadAnswer {
  videoId: string;
  video: Video;
  upload: { method: "PUT"; url: string; headers: Record<string, string>; expiresIn: number } | null;
  multipart: {
    uploadId: string;
    partSizeBytes: number;
    parts: PartUrl[];
    completePath: string;
    expiresIn: number;
  } | null;
  limits: { maxBytes: number; allowedContentTypes: string[] };
}

// --- live streams (operators) --------------------------------------------------------------------
export type StreamState = "stopped" | "starting" | "running" | "reconnecting" | "stopping" | "failed";
export type VideoMode = "auto" | "passthrough" | "transcode";

export interface RelayTask {
  taskId: string;
  startedAt: string | null;
  heartbeatAt: string | null;
  leaseExpiresAt: string | null;
}

export interface Stream {
  streamId: string;
  name: string;
  sourceUrl: string; // without its secrets
  sourceProtocol: "hls" | "rtsp" | "srt";
  sourceSecrets: string[]; // which secrets the source has, never their values
  kvsStreamName: string;
  video: VideoMode;
  desiredState: "running" | "stopped";
  state: StreamState;
  stateSince: string;
  outageCause: string | null;
  outageSince: string | null;
  reconnects: number;
  inputBitrateBps: number | null;
  lastFragmentNumber: string | null;
  lastFragmentTimecode: number | null;
  lastFragmentAckedAt: string | null;
  credentialsExpireAt: string | null;
  // The "camera offline" slate fed to KVS while the camera is down (transcode mode): on since when, and
  // how many of its fragments KVS persisted since the relay task started.
  slateOn?: boolean;
  slateSince?: string | null;
  slateFragmentsPersisted?: number;
  task: RelayTask | null;
  createdAt: string;
  updatedAt: string;
  // Recording (docs/recordings-api.md): the store is shown redacted, the webhook secret only once.
  record?: boolean;
  recordObjectStore?: string | null;
  recordWebhookUrl?: string | null;
  recordWebhookSecret?: string | null;
  retentionDays?: number | null;
  reconnectWindowSeconds?: number | null;
  recordRenditions?: string[];
}

/** The recording settings a stream's form sends (POST /streams, PATCH /streams/{id}). */
export interface RecordSettings {
  record: boolean;
  recordRenditions: string[];
  retentionDays: number | null;
  recordObjectStore?: string | null;
  recordWebhookUrl?: string | null;
}

export interface NewStream extends Partial<RecordSettings> {
  name: string;
  sourceUrl: string;
  kvsStreamName?: string;
  video: VideoMode;
}

// --- recordings (operators) ----------------------------------------------------------------------
export type SessionState = "recording" | "ended" | "finalizing" | "ready" | "failed" | "expired";

export interface RecordingSession {
  sessionId: string;
  streamId: string;
  state: SessionState;
  startedAt: string;
  endedAt: string | null;
  endReason: string | null;
  durationSeconds: number | null;
  store: string | null;
  storeSource: "default" | "stream" | "webhook" | null;
  storeFallbackReason: string | null;
  writerCount: number;
  discontinuities: number;
  renditions: Rendition[];
  videoId: string | null;
  failureReason: string | null;
  workflowState: string | null;
  createdAt: string;
  updatedAt: string;
  livePlaylistUrl?: string | null; // GET of one session only, while recording
  livePlaylistExpiresAt?: string | null;
}

export interface FinalizeAnswer {
  sessionId: string;
  state: SessionState;
  started: boolean;
  mode?: "finalize" | "fixup";
  videoId?: string;
}

export interface RecordingExport {
  exportId: string;
  sessionId: string;
  state: "running" | "ready" | "failed";
  start: number;
  end: number;
  createdAt: string;
  updatedAt?: string;
  durationSeconds?: number | null;
  sizeBytes?: number | null;
  downloadUrl?: string | null;
  failureReason?: string | null;
}
