import { cursorProtocol, singleChannel } from './channels.js';

/** longpoll-kit's one-channel poll, as bench/many.js compares it: GET /channels/room.<i mod 4>. */
export const protocol = cursorProtocol((index) => `/channels/${singleChannel(index)}`);
