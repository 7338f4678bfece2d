import { Component, type ErrorInfo, type ReactNode } from "react";

interface State {
  error: Error | null;
}

/** A page that throws while rendering shows a sentence and a way out, never a blank screen. */
export class ErrorBoundary extends Component<{ children: ReactNode; resetKey: string }, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error("page failed to render", error, info.componentStack);
  }

  componentDidUpdate(previous: { resetKey: string }): void {
    // Navigating elsewhere gives the next page a fresh start.
    if (this.state.error && previous.resetKey !== this.props.resetKey) this.setState({ error: null });
  }

  render() {
    if (!this.state.error) return this.props.children;
    return (
      <section className="narrow center" aria-labelledby="crash-title">
        <h1 id="crash-title">Something went wrong on this page</h1>
        <p className="muted">The page hit an error it did not expect. Reloading usually fixes it.</p>
        <div className="actions centered">
          <button type="button" className="btn" onClick={() => window.location.reload()}>
            Reload the page
          </button>
          <a className="btn ghost" href="/">
            Go to the home page
          </a>
        </div>
      </section>
    );
  }
}
