// The API's wire shapes (reelay/api/models.py), the parts the front end reads.
export type VideoStatus = "awaiting_upload" | "queued" | "processing" | "ready" | "failed";

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
