// Container HEALTHCHECK of every image: exits 0 when the service's /readyz answers 2xx, else 1.
//   node /app/healthcheck.mjs [PORT_VARIABLE]
// PORT_VARIABLE names the env variable holding the HTTP port: HTTP_PORT (default) for the model
// services, retriever and batch worker, GATEWAY_HTTP_PORT for the gateway. The images carry no
// curl or wget, so node's own fetch does the call. /readyz turns 200 once the models are loaded
// and warmed up and 503 again while the service drains on SIGTERM.
const TIMEOUT_MS = 2_500; // below the HEALTHCHECK --timeout (3 s), so the reason gets printed

const variable = process.argv[2] ?? 'HTTP_PORT';
const raw = process.env[variable];
const port = Number(raw);
if (raw === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) {
  console.error(`healthcheck: ${variable} is ${JSON.stringify(raw)}; it must be the service's HTTP port`);
  process.exit(1);
}

setTimeout(() => {
  console.error(`healthcheck: /readyz on port ${port} did not answer within ${TIMEOUT_MS} ms`);
  process.exit(1);
}, TIMEOUT_MS).unref();

try {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`);
  if (!response.ok) {
    console.error(`healthcheck: /readyz on port ${port} answered ${response.status}`);
    process.exit(1);
  }
  process.exit(0);
} catch (error) {
  // fetch reports "fetch failed"; the cause says why (ECONNREFUSED while the service starts).
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
  console.error(
    `healthcheck: /readyz on port ${port}: ${error instanceof Error ? error.message : String(error)}${cause}`,
  );
  process.exit(1);
}
