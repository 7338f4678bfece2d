import { useState, type FormEvent } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { api, describeError } from "../api";
import { Alert, Notice } from "../components/Alert";
import { Field } from "../components/Field";
import { useTitle } from "../hooks";
import { safeNext } from "./Login";

export function ConfirmPage() {
  useTitle("Confirm your email");
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [email, setEmail] = useState(params.get("email") ?? "");
  const [code, setCode] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.confirm(email.trim(), code.trim());
      const next = safeNext(params.get("next"));
      navigate(`/login?confirmed=1&email=${encodeURIComponent(email.trim())}&next=${encodeURIComponent(next)}`);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const resend = async () => {
    setError(null);
    setInfo(null);
    try {
      await api.resendCode(email.trim());
      setInfo(`A new code is on its way to ${email.trim()}.`);
    } catch (err) {
      setError(describeError(err));
    }
  };

  return (
    <section className="narrow auth-card" aria-labelledby="confirm-title">
      <h1 id="confirm-title" tabIndex={-1}>
        Confirm your email
      </h1>
      <p className="muted">
        Enter the code we sent{email ? ` to ${email}` : ""}. (On <code>make up</code>, the code is printed on the
        console.)
      </p>
      {info && <Notice>{info}</Notice>}
      {error && <Alert message={error} />}
      <form onSubmit={submit} className="form">
        <Field label="Email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <Field
          label="Confirmation code"
          inputMode="numeric"
          autoComplete="one-time-code"
          required
          value={code}
          onChange={(e) => setCode(e.target.value)}
        />
        <button type="submit" className="btn wide" disabled={busy}>
          {busy ? "Confirming…" : "Confirm"}
        </button>
      </form>
      <button type="button" className="btn link" onClick={resend} disabled={!email.trim()}>
        Send me a new code
      </button>
    </section>
  );
}
