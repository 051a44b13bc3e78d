import { cursorProtocol, manyChannels } from './channels.js';

/**
 * longpoll-kit's many-channel poll: GET /channels?channels=<10 of 40>&cursor=…&wait=55, each
 * client its own list (see channels.js), resuming from the composite cursor of its last answer.
 */
export const protocol = cursorProtocol((index) => `/channels?channels=${manyChannels(index).join(',')}`);
