import { startMetricsServer } from '@virtbus/monitoring';
import { Gauge, Registry } from 'prom-client';

/** The scrape baseline: the same metrics HTTP server with a static registry of N gauge series, in its own process. */
const series = Number(process.argv[2] ?? 0);
const registry = new Registry();
const gauge = new Gauge({ name: 'bench_static_value', help: 'A fixed value per series.', labelNames: ['domain', 'uuid', 'node'], registers: [registry] });
for (let index = 0; index < series; index++) gauge.set({ domain: `d${index}`, uuid: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`, node: 'bench' }, index);
const server = await startMetricsServer({ registry, port: 0 });
process.stdout.write(`ready ${server.url}\n`);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
