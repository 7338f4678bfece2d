import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";
import { useSearchParams } from "react-router";
import { describeError } from "./api";
import { session, type Session } from "./session";

export function useSession(): Session | null {
  return useSyncExternalStore(
    (l) => session.subscribe(l),
    () => session.get(),
  );
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  status: number | null;
  loading: boolean;
  reload: () => void;
}

/** Runs an API call when its key changes; keeps the last data while reloading. */
export function useLoad<T>(load: () => Promise<T>, key: unknown[]): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<number | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let live = true;
    setLoading(true);
    loadRef
      .current()
      .then((d) => {
        if (!live) return;
        setData(d);
        setError(null);
        setStatus(200);
      })
      .catch((e: unknown) => {
        if (!live) return;
        setError(describeError(e));
        setStatus((e as { status?: number }).status ?? null);
      })
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [...key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, status, loading, reload };
}

/** Calls fn every `ms` while `active`; stops as soon as it is not. */
export function useInterval(fn: () => void, ms: number, active: boolean): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => ref.current(), ms);
    return () => clearInterval(t);
  }, [ms, active]);
}

export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Reelay` : "Reelay";
  }, [title]);
}

/** Whether the tab is visible: polling stops while it is hidden and resumes when it comes back. */
export function usePageVisible(): boolean {
  return useSyncExternalStore(
    (l) => {
      document.addEventListener("visibilitychange", l);
      return () => document.removeEventListener("visibilitychange", l);
    },
    () => document.visibilityState === "visible",
  );
}

/** Keyset pagination kept in the URL: the page's cursor (`after`) and the trail of earlier cursors,
 * so "newer" can go back without the API offering a previous-page cursor. */
export function useCursorPages(): { cursor: string | null; older: (next: string) => void; newer: () => void } {
  const [params, setParams] = useSearchParams();
  const cursor = params.get("after");
  const trail = params.getAll("trail");
  const older = (nextCursor: string) => {
    const next = new URLSearchParams();
    next.set("after", nextCursor);
    [...trail, cursor ?? ""].forEach((c) => next.append("trail", c));
    setParams(next);
  };
  const newer = () => {
    const back = [...trail];
    const previous = back.pop();
    const next = new URLSearchParams();
    if (previous) next.set("after", previous);
    back.forEach((c) => next.append("trail", c));
    setParams(next);
  };
  return { cursor, older, newer };
}
