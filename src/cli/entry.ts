/** Process entry of the CLI (bin/relora.js runs the compiled copy; child processes reuse it). */
import { main } from './main.ts';

await main(process.argv.slice(2));
