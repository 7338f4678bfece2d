import { Link } from "react-router";
import { useTitle } from "../hooks";

const TEXT = {
  page: { title: "Page not found", body: "There is nothing at this address.", to: "/", back: "Browse videos" },
  video: {
    title: "No such video",
    body: "This video does not exist, or it has been deleted.",
    to: "/",
    back: "Browse videos",
  },
  stream: {
    title: "No such stream",
    body: "This stream does not exist, it has been deleted, or it belongs to another operator.",
    to: "/live",
    back: "Live streams",
  },
};

export function NotFoundPage({ what = "page" }: { what?: keyof typeof TEXT }) {
  useTitle("Not found");
  const t = TEXT[what];
  return (
    <section className="narrow center" aria-labelledby="nf-title">
      <p className="big-code" aria-hidden="true">
        404
      </p>
      <h1 id="nf-title" tabIndex={-1}>
        {t.title}
      </h1>
      <p className="muted">{t.body}</p>
      <Link className="btn" to={t.to}>
        {t.back}
      </Link>
    </section>
  );
}
