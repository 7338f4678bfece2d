import type { ReactNode } from "react";
import { Link, NavLink, useNavigate } from "react-router";
import { useSession } from "../hooks";
import { logOut as endSession } from "../session";

interface NavItem {
  to: string;
  label: string;
  auth: boolean;
}

// The operator's "Live streams" and "Recordings" entries join this list when the streams API lands.
const NAV: NavItem[] = [
  { to: "/", label: "Browse", auth: false },
  { to: "/my", label: "My videos", auth: true },
  { to: "/upload", label: "Upload", auth: true },
];

export function Layout({ children }: { children: ReactNode }) {
  const s = useSession();
  const navigate = useNavigate();
  const logOut = () => {
    endSession();
    navigate("/");
  };
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="topbar-inner">
          <Link to="/" className="brand" aria-label="Reelay home">
            <svg viewBox="0 0 32 32" width="28" height="28" aria-hidden="true">
              <rect width="32" height="32" rx="8" fill="var(--accent)" />
              <path d="M12 9v14l11-7z" fill="#fff" />
            </svg>
            <span>Reelay</span>
          </Link>
          <nav aria-label="Main" className="mainnav">
            {NAV.filter((n) => !n.auth || s).map((n) => (
              <NavLink key={n.to} to={n.to} end className={({ isActive }) => (isActive ? "active" : undefined)}>
                {n.label}
              </NavLink>
            ))}
          </nav>
          <div className="account">
            {s ? (
              <>
                <span className="who" title={s.email}>
                  {s.email}
                </span>
                <button type="button" className="btn ghost small" onClick={logOut}>
                  Log out
                </button>
              </>
            ) : (
              <>
                <Link to="/login" className="btn ghost small">
                  Log in
                </Link>
                <Link to="/register" className="btn small">
                  Sign up
                </Link>
              </>
            )}
          </div>
        </div>
      </header>
      <main id="main" className="page">
        {children}
      </main>
      <footer className="footer">Reelay · upload, transcode, watch</footer>
    </>
  );
}
