import { Link } from "react-router";
import { useTitle } from "../hooks";

export function NotFoundPage({ what = "page" }: { what?: "page" | "video" }) {
  useTitle("Not found");
  return (
    <section className="narrow center" aria-labelledby="nf-title">
      <p className="big-code" aria-hidden="true">
        404
      </p>
      <h1 id="nf-title" tabIndex={-1}>
        {what === "video" ? "No such video" : "Page not found"}
      </h1>
      <p className="muted">
        {what === "video"
          ? "This video does not exist, or it has been deleted."
          : "There is nothing at this address."}
      </p>
      <Link className="btn" to="/">
        Browse videos
      </Link>
    </section>
  );
}
