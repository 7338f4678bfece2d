import { useState, type FormEvent } from "react";
import { Link, useLocation, useNavigate, useSearchParams } from "react-router";
import { ApiError, api, describeError } from "../api";
import { Alert, Notice } from "../components/Alert";
import { Field } from "../components/Field";
import { useTitle } from "../hooks";
import { session } from "../session";

/** Only same-site paths: a crafted ?next= must not send people elsewhere. */
export function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/my";
}

export function LoginPage() {
  useTitle("Log in");
  const [params] = useSearchParams();
  const location = useLocation();
  const navigate = useNavigate();
  const [email, setEmail] = useState(params.get("email") ?? "");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const next = safeNext(params.get("next"));
  const expired = (location.state as { expired?: boolean } | null)?.expired;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const tokens = await api.login(email.trim(), password);
      session.signIn(email.trim(), tokens);
      navigate(next, { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.code === "user_not_confirmed") {
        navigate(`/confirm?email=${encodeURIComponent(email.trim())}&next=${encodeURIComponent(next)}`);
        return;
      }
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="narrow auth-card" aria-labelledby="login-title">
      <h1 id="login-title" tabIndex={-1}>
        Log in
      </h1>
      {expired && <Notice>Your session has ended. Log in again to continue where you were.</Notice>}
      {params.get("confirmed") && <Notice>Your account is confirmed. You can log in now.</Notice>}
      {error && <Alert message={error} />}
      <form onSubmit={submit} className="form">
        <Field label="Email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <Field
          label="Password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <button type="submit" className="btn wide" disabled={busy}>
          {busy ? "Logging in…" : "Log in"}
        </button>
      </form>
      <p className="muted">
        New to Reelay? <Link to={`/register?next=${encodeURIComponent(next)}`}>Create an account</Link>
      </p>
    </section>
  );
}
