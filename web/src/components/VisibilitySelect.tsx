import { useId } from "react";
import type { Visibility } from "../types";

export const VISIBILITY_LABELS: Record<Visibility, string> = {
  public: "Public: listed, anyone can watch",
  unlisted: "Unlisted: anyone with the link can watch",
  private: "Private: only you can watch",
};

/** Who may watch a video: a labelled select (the API's visibility). */
export function VisibilitySelect({
  value,
  onChange,
  disabled,
  label = "Visibility",
}: {
  value: Visibility;
  onChange: (v: Visibility) => void;
  disabled?: boolean;
  label?: string;
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} disabled={disabled} onChange={(e) => onChange(e.target.value as Visibility)}>
        {(Object.keys(VISIBILITY_LABELS) as Visibility[]).map((v) => (
          <option key={v} value={v}>
            {VISIBILITY_LABELS[v]}
          </option>
        ))}
      </select>
    </div>
  );
}
