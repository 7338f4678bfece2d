// The signed-in person's tokens, kept in localStorage, refreshed before they expire. A plain store
// (not React state) so the API client can refresh on its own; components subscribe to changes.
import { api } from "./api";

export interface Session {
  email: string;
  idToken: string;
  refreshToken: string | null;
  expiresAt: number; // epoch ms
}

const KEY = "reelay.session";
const EARLY_MS = 60_000; // refresh a minute before expiry

type Listener = () => void;

class SessionStore {
  private current: Session | null = read();
  private listeners = new Set<Listener>();
  private refreshing: Promise<boolean> | null = null;
  onExpired: (() => void) | null = null;
  /** Why the last session ended: the login page says so when it was not the person's choice. */
  endedBy: "expiry" | "logout" | null = null;

  get(): Session | null {
    return this.current;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(next: Session | null): void {
    this.current = next;
    if (next) localStorage.setItem(KEY, JSON.stringify(next));
    else localStorage.removeItem(KEY);
    this.listeners.forEach((l) => l());
  }

  signIn(email: string, tokens: { idToken: string; refreshToken?: string | null; expiresIn: number }): void {
    this.endedBy = null;
    this.set({
      email,
      idToken: tokens.idToken,
      refreshToken: tokens.refreshToken ?? null,
      expiresAt: Date.now() + tokens.expiresIn * 1000,
    });
  }

  async idToken(): Promise<string | null> {
    const s = this.current;
    if (!s) return null;
    if (s.expiresAt - Date.now() < EARLY_MS && !(await this.refresh())) return null;
    return this.current?.idToken ?? null;
  }

  /** Trade the refresh token for new tokens; one refresh at a time, however many callers ask. */
  refresh(): Promise<boolean> {
    const s = this.current;
    if (!s?.refreshToken) return Promise.resolve(false);
    this.refreshing ??= api
      .refresh(s.refreshToken)
      .then((t) => {
        this.signIn(s.email, { ...t, refreshToken: t.refreshToken ?? s.refreshToken });
        return true;
      })
      .catch(() => false)
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  /** The session is gone for good: forget it and let the app send the person to log in. */
  expired(): void {
    this.endedBy = "expiry";
    this.set(null);
    this.onExpired?.();
  }
}

function read(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

export const session = new SessionStore();

export function logOut(): void {
  session.endedBy = "logout";
  session.set(null);
}
