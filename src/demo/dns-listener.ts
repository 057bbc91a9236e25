/**
 * A DNS transport for small servers: binds UDP and TCP on one port (the OS picks it when port is 0),
 * hands every query message to a handler and sends back what it returns (length-prefixed over TCP).
 * Used by the demo's embedded DNS server and by the tests' misbehaving one. Not part of the library API.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { createServer, type Socket } from 'node:net';

/** Returns the messages to send back, in order; [] means silence. */
export type DnsHandler = (
  message: Buffer,
  transport: 'udp' | 'tcp',
  from?: RemoteInfo,
) => Buffer[] | Promise<Buffer[]>;

export interface DnsListener {
  address: string;
  port: number;
  close(): Promise<void>;
}

export async function listenDns(address: string, port: number, handler: DnsHandler): Promise<DnsListener> {
  for (let tries = 0; tries < 20; tries++) {
    const udp = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, address, () => resolve());
    });
    const bound = udp.address().port;
    const sockets = new Set<Socket>();
    const tcp = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      socket.setTimeout(10_000, () => socket.destroy());
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
          buffered = buffered.subarray(2 + message.length);
          void Promise.resolve(handler(message, 'tcp')).then((replies) => {
            for (const r of replies) {
              const framed = Buffer.alloc(2 + r.length);
              framed.writeUInt16BE(r.length, 0);
              r.copy(framed, 2);
              socket.write(framed);
            }
          });
        }
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(bound, address, () => resolve(true));
    });
    if (!ok) {
      udp.close();
      if (port !== 0) throw new Error(`TCP port ${port} on ${address} is taken`);
      continue;
    }
    let closed = false;
    udp.on('message', (message, from) => {
      void Promise.resolve(handler(message, 'udp', from)).then((replies) => {
        // A handler that answers late (a slow server) may answer after close(): drop the reply then.
        if (closed) return;
        for (const r of replies) udp.send(r, from.port, from.address);
      });
    });
    return {
      address,
      port: bound,
      close: () =>
        new Promise<void>((resolve) => {
          closed = true;
          for (const s of sockets) s.destroy();
          udp.close(() => tcp.close(() => resolve()));
        }),
    };
  }
  throw new Error(`could not bind UDP and TCP on one port of ${address}`);
}
