"""A simulated energy meter for the Modbus tests: a real Modbus TCP server
(pymodbus) on the given port, unit 1, holding registers

  0-1  power, kW, float32, high word first
  2-3  energy counter, Wh, uint32, high word first, starting at START_WH and
       counting up by power x elapsed time, so it wraps past 2^32 soon
  4    temperature, 0.1 degC, uint16

Usage: meter.py PORT [START_WH]. Prints "ready" once it listens.
"""

import asyncio
import struct
import sys
import time

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartAsyncTcpServer

POWER_KW = 42.5


def words_f32(value):
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def words_u32(value):
    value %= 2**32
    return [value >> 16, value & 0xFFFF]


async def update(context, start_wh):
    energy_wh = float(start_wh)
    last = time.monotonic()
    while True:
        now = time.monotonic()
        energy_wh += POWER_KW * 1000 * (now - last) / 3600
        last = now
        values = words_f32(POWER_KW) + words_u32(int(energy_wh)) + [215]
        context[1].setValues(3, 0, values)
        await asyncio.sleep(0.05)


async def main():
    port = int(sys.argv[1])
    start_wh = int(sys.argv[2]) if len(sys.argv) > 2 else 2**32 - 20
    block = ModbusSequentialDataBlock(0, [0] * 16)
    context = ModbusServerContext(slaves={1: ModbusSlaveContext(hr=block)}, single=False)
    context[1].setValues(3, 0, words_f32(POWER_KW) + words_u32(start_wh) + [215])
    asyncio.create_task(update(context, start_wh))
    print("ready", flush=True)
    await StartAsyncTcpServer(context=context, address=("127.0.0.1", port))


asyncio.run(main())
