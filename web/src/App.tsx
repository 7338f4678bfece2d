import { useEffect, useRef } from "react";
import { Navigate, Route, Routes, useLocation, useNavigate } from "react-router";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { Layout } from "./components/Layout";
import { useSession } from "./hooks";
import { session } from "./session";
import { ConfirmPage } from "./pages/Confirm";
import { HomePage } from "./pages/Home";
import { LoginPage } from "./pages/Login";
import { MyVideosPage } from "./pages/MyVideos";
import { NotFoundPage } from "./pages/NotFound";
import { RegisterPage } from "./pages/Register";
import { SessionPage } from "./pages/Session";
import { StreamPage } from "./pages/Stream";
import { StreamsPage } from "./pages/Streams";
import { NewStreamPage } from "./pages/StreamNew";
import { UploadPage } from "./pages/Upload";
import { WatchPage } from "./pages/Watch";

/** Client routes. They must not collide with the API's paths (/videos, /me, /auth), which the
 * same origin serves locally: the gateway sends these to index.html (local/gateway.py SPA_ROUTES). */
export const ROUTES = {
  home: "/",
  watch: (id: string) => `/watch/${encodeURIComponent(id)}`,
  login: "/login",
  register: "/register",
  confirm: "/confirm",
  mine: "/my",
  upload: "/upload",
  // Operators' live streams: /live, not /streams, which is the API's path on the same origin.
  streams: "/live",
  newStream: "/live/new",
  stream: (id: string) => `/live/${encodeURIComponent(id)}`,
  session: (id: string, sessionId: string) =>
    `/live/${encodeURIComponent(id)}/recordings/${encodeURIComponent(sessionId)}`,
};

export function loginPath(next: string): string {
  return `${ROUTES.login}?next=${encodeURIComponent(next)}`;
}

function RequireAuth({ children }: { children: React.ReactElement }) {
  const s = useSession();
  const location = useLocation();
  if (!s)
    return (
      <Navigate
        to={loginPath(location.pathname + location.search)}
        replace
        state={{ expired: session.endedBy === "expiry" }}
      />
    );
  return children;
}

export function App() {
  const navigate = useNavigate();
  const location = useLocation();

  useEffect(() => {
    // A 401 the refresh token could not fix: log in again, then come back here.
    session.onExpired = () => {
      if (window.location.pathname !== ROUTES.login)
        navigate(loginPath(window.location.pathname + window.location.search), {
          replace: true,
          state: { expired: true },
        });
    };
    return () => {
      session.onExpired = null;
    };
  }, [navigate]);

  const first = useRef(true);
  useEffect(() => {
    // After a client-side navigation, move focus to the new page's heading so keyboard and
    // screen-reader users land on it (a full page load starts at the top by itself).
    if (first.current) {
      first.current = false;
      return;
    }
    const h1 = document.querySelector<HTMLElement>("main h1");
    h1?.focus({ preventScroll: true });
  }, [location.pathname]);

  return (
    <Layout>
      <ErrorBoundary resetKey={location.pathname}>
        <Routes>
          <Route path="/" element={<HomePage />} />
          <Route path="/watch/:videoId" element={<WatchPage />} />
          <Route path="/login" element={<LoginPage />} />
          <Route path="/register" element={<RegisterPage />} />
          <Route path="/confirm" element={<ConfirmPage />} />
          <Route path="/my" element={<RequireAuth><MyVideosPage /></RequireAuth>} />
          <Route path="/upload" element={<RequireAuth><UploadPage /></RequireAuth>} />
          <Route path="/live" element={<RequireAuth><StreamsPage /></RequireAuth>} />
          <Route path="/live/new" element={<RequireAuth><NewStreamPage /></RequireAuth>} />
          <Route path="/live/:streamId" element={<RequireAuth><StreamPage /></RequireAuth>} />
          <Route
            path="/live/:streamId/recordings/:sessionId"
            element={<RequireAuth><SessionPage /></RequireAuth>}
          />
          <Route path="*" element={<NotFoundPage />} />
        </Routes>
      </ErrorBoundary>
    </Layout>
  );
}
