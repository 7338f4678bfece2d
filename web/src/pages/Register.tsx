import { useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api, describeError } from "../api";
import { Alert } from "../components/Alert";
import { Field } from "../components/Field";
import { useTitle } from "../hooks";
import { safeNext } from "./Login";

export function RegisterPage() {
  useTitle("Sign up");
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.register(email.trim(), password);
      const next = safeNext(params.get("next"));
      navigate(`/confirm?email=${encodeURIComponent(email.trim())}&next=${encodeURIComponent(next)}`);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="narrow auth-card" aria-labelledby="register-title">
      <h1 id="register-title" tabIndex={-1}>
        Create your account
      </h1>
      <p className="muted">Upload videos and share them with anyone. We will send you a code to confirm your email.</p>
      {error && <Alert message={error} />}
      <form onSubmit={submit} className="form">
        <Field label="Email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <Field
          label="Password"
          type="password"
          autoComplete="new-password"
          required
          minLength={12}
          hint="At least 12 characters, with upper and lower case letters, a digit and a symbol."
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <button type="submit" className="btn wide" disabled={busy}>
          {busy ? "Creating…" : "Sign up"}
        </button>
      </form>
      <p className="muted">
        Already have an account? <Link to="/login">Log in</Link>
      </p>
    </section>
  );
}
