import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The build is served from "/" by the local gateway and by CloudFront; hashed assets under
// /assets/ are cached for a year, index.html and config.json never.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 700,
  },
  server: {
    // `npm run dev` against `make up`: the API and media stay on the gateway.
    proxy: {
      "^/(auth|videos|me|streams|media|config\\.json|openapi\\.json)": "http://127.0.0.1:8080",
    },
  },
});
