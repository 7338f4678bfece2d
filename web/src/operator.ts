// Whether the signed-in person is an operator: the ID token's `cognito:groups` claim. This only
// decides what the page offers; the API checks the same claim and answers 403 to everyone else.
import type { Session } from "./session";

export const OPERATORS_GROUP = "operators";

function claims(idToken: string): Record<string, unknown> | null {
  const payload = idToken.split(".")[1];
  if (!payload) return null;
  try {
    const b64 = payload.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(payload.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  } catch {
    return null; // not a JWT we can read: no operator pages, and the API decides anyway
  }
}

export function isOperator(s: Session | null): boolean {
  if (!s) return false;
  const groups = claims(s.idToken)?.["cognito:groups"];
  // Cognito sends a list; a string ("operators" or "[operators admins]") is read the way the API reads it.
  const names = Array.isArray(groups)
    ? groups.map(String)
    : typeof groups === "string"
      ? groups.replace(/^\[|\]$/g, "").split(/[\s,]+/)
      : [];
  return names.includes(OPERATORS_GROUP);
}
