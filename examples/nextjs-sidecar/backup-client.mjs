// A minimal client of the backupkit HTTP API, as a Next.js server (a route handler, a
// server action, a cron route) would call it: plain fetch, no dependencies.
//
//   BACKUPKIT_URL=http://127.0.0.1:8765 BACKUPKIT_TOKEN=... node backup-client.mjs
//
// It starts a backup, polls its status until it ends, finds the backup's artifact in the
// admin status and asks for a short-lived download URL, then fetches it. It prints one JSON
// line with what it did; it exits non-zero with the API's one-line error otherwise.

const base = process.env.BACKUPKIT_URL ?? "http://127.0.0.1:8765";
const token = process.env.BACKUPKIT_TOKEN;
if (!token) {
  console.error("backup-client: set BACKUPKIT_TOKEN to an admin token of the API");
  process.exit(2);
}

async function api(path, body) {
  const response = await fetch(new URL(path, base), {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) {
    throw new Error(`${path}: HTTP ${response.status}: ${data.error}`);
  }
  return { status: response.status, data };
}

async function main() {
  const started = await api("/api/backup", { reason: process.env.BACKUP_REASON ?? "manual" });
  let run = started.data;
  while (run.state === "starting" || run.state === "running") {
    await new Promise((resolve) => setTimeout(resolve, 200));
    run = (await api(started.data.status_url)).data;
  }
  if (run.state !== "finished") {
    throw new Error(`backup ${run.run_id} ${run.state}: ${run.error}`);
  }
  const { data: admin } = await api("/api/admin/backup/status");
  const backup = admin.backups.find((b) => b.id === run.backup_id);
  const artifact = backup.artifacts[0];
  const { data: link } = await api("/api/admin/backup/download-url", { backupPath: artifact.path });
  const download = await fetch(link.url);
  const bytes = (await download.arrayBuffer()).byteLength;
  console.log(JSON.stringify({
    accepted: started.status, backup_id: run.backup_id, path: artifact.path,
    expires_at: link.expires_at, download_status: download.status, downloaded_bytes: bytes,
  }));
}

main().catch((error) => {
  console.error(`backup-client: ${error.message}`);
  process.exit(1);
});
