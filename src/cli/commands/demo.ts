/** `relora demo`: serve the page that trains a tiny LLaMA with ReLoRA inside a browser tab. */
import type { Command } from 'commander';
import { startDemoServer } from '../../demo/server.ts';
import { parseIntOption } from '../errors.ts';

export function register(program: Command): void {
  program
    .command('demo')
    .description('serve a page that trains a tiny LLaMA with ReLoRA in the browser tab (loss, learning rate, merges, update rank live; sampling)')
    .option('--port <n>', 'port to listen on (0: any free port)', parseIntOption('--port', 0), 8080)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .action(async (opts: { port: number; host: string }) => {
      const { url } = await startDemoServer(opts.port, opts.host);
      process.stdout.write(`relora demo: open ${url} (Ctrl-C to stop)\n`);
    });
}
