import type { CommandRunner } from '../program.js';
export const register: CommandRunner = () => undefined;
