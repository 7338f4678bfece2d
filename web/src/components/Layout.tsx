import type { ReactNode } from "react";
import { Link, NavLink, useNavigate } from "react-router";
import { useSession } from "../hooks";
import { isOperator } from "../operator";
import { logOut as endSession } from "../session";

interface NavItem {
  to: string;
  label: string;
  auth: boolean;
  operator?: boolean; // shown only to members of the operators group
}

const NAV: NavItem[] = [
  { to: "/", label: "Browse", auth: false },
  { to: "/my", label: "My videos", auth: true },
  { to: "/upload", label: "Upload", auth: true },
  { to: "/live", label: "Streams", auth: true, operator: true },
];

export function Layout({ children }: { children: ReactNode }) {
  const s = useSession();
  const operator = isOperator(s);
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
            {NAV.filter((n) => (!n.auth || s) && (!n.operator || operator)).map((n) => (
              <NavLink key={n.to} to={n.to} end={!n.operator} className={({ isActive }) => (isActive ? "active" : undefined)}>
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
