export { run, main, USAGE } from './main.js';
