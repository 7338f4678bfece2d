// Uploads straight to object storage: one presigned PUT below the API's multipart threshold, else
// presigned parts sent in parallel. Each part retries with backoff; when a part still fails the
// upload pauses as "interrupted", keeps the parts already stored, and resume() sends only the rest.
import { ApiError, api, backoff, describeError, sleep } from "./api";
import type { UploadAnswer, Visibility } from "./types";

export type Phase = "starting" | "uploading" | "interrupted" | "completing" | "done" | "cancelled" | "failed";

export interface UploadState {
  phase: Phase;
  loaded: number;
  total: number;
  bytesPerSecond: number;
  secondsLeft: number;
  partsDone: number;
  partsTotal: number;
  videoId: string | null;
  message: string | null;
}

export const PARALLEL_PARTS = 4;
export const PART_ATTEMPTS = 3;

interface Piece {
  partNumber: number;
  url: string;
  start: number;
  end: number;
  headers: Record<string, string>;
  etag: string | null;
  loaded: number;
}

class PutError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
  get retryable(): boolean {
    return this.status === 0 || this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

/** PUT one blob with XMLHttpRequest: fetch() cannot report upload progress. */
function put(
  piece: Piece,
  blob: Blob,
  onProgress: (loaded: number) => void,
  register: (xhr: XMLHttpRequest) => void,
): Promise<string | null> {
  return new Promise((ok, fail) => {
    const xhr = new XMLHttpRequest();
    register(xhr);
    xhr.open("PUT", piece.url);
    for (const [k, v] of Object.entries(piece.headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) ok(xhr.getResponseHeader("ETag"));
      // A single PUT only creates its object (If-None-Match: *): 412 means an earlier try, whose
      // answer was lost, already stored it.
      else if (xhr.status === 412 && piece.headers["If-None-Match"] === "*") ok(null);
      else fail(new PutError(xhr.status, `storage answered ${xhr.status}`));
    };
    xhr.onerror = () => fail(new PutError(0, "network error"));
    xhr.ontimeout = () => fail(new PutError(0, "timed out"));
    xhr.onabort = () => fail(new DOMException("aborted", "AbortError"));
    xhr.send(blob);
  });
}

export class Upload {
  state: UploadState;
  private pieces: Piece[] = [];
  private answer: UploadAnswer | null = null;
  private xhrs = new Set<XMLHttpRequest>();
  private controller = new AbortController();
  private samples: { t: number; loaded: number }[] = [];

  constructor(
    readonly file: File,
    readonly meta: { displayName: string; description: string; visibility: Visibility },
    private readonly onChange: (state: UploadState) => void,
  ) {
    this.state = {
      phase: "starting",
      loaded: 0,
      total: file.size,
      bytesPerSecond: 0,
      secondsLeft: Number.NaN,
      partsDone: 0,
      partsTotal: 0,
      videoId: null,
      message: null,
    };
  }

  private update(changes: Partial<UploadState>): void {
    this.state = { ...this.state, ...changes };
    this.onChange(this.state);
  }

  async start(): Promise<void> {
    try {
      this.answer = await api.createUpload({
        displayName: this.meta.displayName,
        description: this.meta.description,
        contentType: this.file.type || "video/mp4",
        sizeBytes: this.file.size,
        fileName: this.file.name,
        visibility: this.meta.visibility,
      });
    } catch (e) {
      this.update({ phase: "failed", message: describeError(e) });
      return;
    }
    const a = this.answer;
    if (a.multipart) {
      const size = a.multipart.partSizeBytes;
      this.pieces = a.multipart.parts.map((p) => ({
        partNumber: p.partNumber,
        url: p.url,
        start: (p.partNumber - 1) * size,
        end: Math.min(this.file.size, p.partNumber * size),
        headers: {},
        etag: null,
        loaded: 0,
      }));
    } else if (a.upload) {
      this.pieces = [
        { partNumber: 1, url: a.upload.url, start: 0, end: this.file.size, headers: a.upload.headers, etag: null, loaded: 0 },
      ];
    }
    this.update({ videoId: a.videoId, partsTotal: this.pieces.length });
    await this.run();
  }

  /** Send the parts not stored yet (after an interruption). */
  resume(): Promise<void> {
    if (this.state.phase !== "interrupted") return Promise.resolve();
    return this.run();
  }

  async cancel(): Promise<void> {
    this.controller.abort();
    this.xhrs.forEach((x) => x.abort());
    const id = this.state.videoId;
    this.update({ phase: "cancelled", message: "Upload cancelled." });
    // The video row would wait for its upload forever: remove it.
    if (id) await api.deleteVideo(id).catch(() => undefined);
  }

  private async run(): Promise<void> {
    this.controller = new AbortController();
    this.samples = [];
    this.update({ phase: "uploading", message: null });
    const queue = this.pieces.filter((p) => !p.etag);
    let failure: unknown = null;
    const worker = async () => {
      while (queue.length && failure === null && !this.controller.signal.aborted) {
        const piece = queue.shift()!;
        try {
          await this.send(piece);
        } catch (e) {
          failure ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, queue.length) }, worker));
    if (this.state.phase === "cancelled") return;
    if (failure !== null) {
      const done = this.pieces.filter((p) => p.etag).length;
      const fatal = failure instanceof PutError && !failure.retryable;
      this.update({
        phase: fatal ? "failed" : "interrupted",
        bytesPerSecond: 0,
        message: fatal
          ? `The storage refused the upload (${(failure as PutError).status}). Please start it again.`
          : `The connection failed during the upload. ${done} of ${this.pieces.length} ` +
            `part${this.pieces.length === 1 ? "" : "s"} are safely stored; resume to send the rest.`,
      });
      return;
    }
    await this.complete();
  }

  private async send(piece: Piece): Promise<void> {
    const blob = this.file.slice(piece.start, piece.end, this.file.type);
    for (let attempt = 0; ; attempt++) {
      try {
        const etag = await put(
          piece,
          blob,
          (loaded) => {
            piece.loaded = loaded;
            this.progress();
          },
          (xhr) => this.xhrs.add(xhr),
        );
        piece.etag = etag ?? `"part-${piece.partNumber}"`;
        piece.loaded = piece.end - piece.start;
        this.progress();
        return;
      } catch (e) {
        piece.loaded = 0;
        this.progress();
        if (!(e instanceof PutError) || !e.retryable || attempt + 1 >= PART_ATTEMPTS) throw e;
        await sleep(backoff(attempt), this.controller.signal);
      }
    }
  }

  private progress(): void {
    const loaded = this.pieces.reduce((sum, p) => sum + (p.etag ? p.end - p.start : p.loaded), 0);
    const now = performance.now();
    this.samples.push({ t: now, loaded });
    while (this.samples.length > 2 && now - this.samples[0].t > 3000) this.samples.shift();
    const first = this.samples[0];
    const seconds = (now - first.t) / 1000;
    const speed = seconds > 0.2 ? Math.max(0, (loaded - first.loaded) / seconds) : this.state.bytesPerSecond;
    this.update({
      loaded,
      bytesPerSecond: speed,
      secondsLeft: speed > 0 ? (this.file.size - loaded) / speed : Number.NaN,
      partsDone: this.pieces.filter((p) => p.etag).length,
    });
  }

  private async complete(): Promise<void> {
    const a = this.answer!;
    if (a.multipart) {
      this.update({ phase: "completing" });
      try {
        await api.completeUpload(
          a.multipart.completePath,
          a.multipart.uploadId,
          this.pieces.map((p) => ({ partNumber: p.partNumber, etag: p.etag! })),
        );
      } catch (e) {
        const retryable = e instanceof ApiError && (e.status === 0 || e.status >= 500);
        this.update({ phase: retryable ? "interrupted" : "failed", message: describeError(e) });
        return;
      }
    }
    this.update({ phase: "done", loaded: this.file.size, secondsLeft: 0, message: null });
  }
}
