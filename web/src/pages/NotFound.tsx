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
  recording: {
    title: "No such recording",
    body: "This recording does not exist, or it belongs to another operator's stream.",
    to: "/live",
    back: "Live streams",
  },
};

export function NotFoundPage({ what = "page" }: { what?: keyof typeof TEXT }) {
  return <StatusPage code={404} {...TEXT[what]} />;
}

/** A page that says, with its status code, why there is nothing to show here and where to go. */
export function StatusPage(props: { code: number; title: string; body: string; to: string; back: string }) {
  useTitle(props.code === 404 ? "Not found" : props.title);
  return (
    <section className="narrow center" aria-labelledby="nf-title">
      <p className="big-code" aria-hidden="true">
        {props.code}
      </p>
      <h1 id="nf-title" tabIndex={-1}>
        {props.title}
      </h1>
      <p className="muted">{props.body}</p>
      <Link className="btn" to={props.to}>
        {props.back}
      </Link>
    </section>
  );
}
