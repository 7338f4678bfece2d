import { useEffect, useRef, useState } from "react";
import { backoff } from "../api";
import type { Video } from "../types";

/**
 * A private video's playback URL carries a signed query that covers every file under the master's
 * directory (reelay/playback.py). Playlists name their segments with relative URIs, which lose the
 * query, so the same query goes on every request hls.js makes under that directory.
 */
export function signedLoader(playbackUrl: string): ((xhr: XMLHttpRequest, url: string) => void) | undefined {
  const master = new URL(playbackUrl, window.location.href);
  if (!master.search) return undefined; // public and unlisted videos: plain, cacheable URLs
  const directory = master.href.slice(0, master.href.length - master.search.length).replace(/[^/]*$/, "");
  return (xhr, url) => {
    const target = new URL(url, master);
    if (!target.href.startsWith(directory) || target.search) return;
    xhr.open("GET", target.href + master.search, true);
  };
}

const MANIFEST_TRIES = 30; // 35 to 70 s with the API's backoff (at most 2.4 s apart)

/** What the player needs: a video, or anything HLS with an id and a name (a live recording). */
export type Playable = Pick<Video, "videoId" | "displayName" | "playbackUrl" | "thumbnailUrl">;

/** hls.js where Media Source Extensions exist, the browser's own HLS (Safari, iOS) otherwise. */
export function Player({ video }: { video: Playable }) {
  const ref = useRef<HTMLVideoElement>(null);
  const [error, setError] = useState<string | null>(null);
  // The page polls a video that is still processing: its URL may move from the live master to
  // the finished one, which lists the same segments. Keep playing what was loaded first.
  const urlRef = useRef(video.playbackUrl);
  urlRef.current ??= video.playbackUrl;
  const hasUrl = !!video.playbackUrl;

  useEffect(() => {
    const el = ref.current;
    const url = urlRef.current;
    if (!el || !url) return;
    let destroyed = false;
    let destroy: () => void = () => undefined;
    setError(null);
    import("hls.js")
      .then(({ default: Hls }) => {
        if (destroyed) return;
        if (Hls.isSupported()) {
          const hls = new Hls({ enableWorker: true, xhrSetup: signedLoader(url) });
          let tries = 0;
          let retry: ReturnType<typeof setTimeout> | undefined;
          hls.on(Hls.Events.ERROR, (_e, data) => {
            if (!data.fatal) return;
            const manifest =
              data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR ||
              data.details === Hls.ErrorDetails.MANIFEST_LOAD_TIMEOUT;
            if (manifest) {
              // startLoad does not fetch the playlist again: a live recording's answers 404 until
              // its first segment is stored. Load it again, backing off, then say so.
              if (tries >= MANIFEST_TRIES) setError("This video could not be loaded. Reload the page to try again.");
              else retry = setTimeout(() => hls.loadSource(url), backoff(Math.min(tries++, 3)));
            } else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
            else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
            else setError("This video could not be played.");
          });
          hls.on(Hls.Events.MANIFEST_PARSED, () => {
            tries = 0;
          });
          hls.loadSource(url);
          hls.attachMedia(el);
          destroy = () => {
            clearTimeout(retry);
            hls.destroy();
          };
        } else if (el.canPlayType("application/vnd.apple.mpegurl")) {
          el.src = url; // Safari and iOS play HLS natively
        } else {
          setError("This browser cannot play HLS video.");
        }
      })
      .catch(() => setError("The player could not be loaded. Reload the page to try again."));
    return () => {
      destroyed = true;
      destroy();
    };
  }, [video.videoId, hasUrl]);

  return (
    <div className="player">
      <video
        ref={ref}
        controls
        playsInline
        poster={video.thumbnailUrl ?? undefined}
        aria-label={`Video: ${video.displayName}`}
        data-testid="player"
      />
      {error && (
        <p className="player-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
