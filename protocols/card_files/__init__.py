"""The files of a T-Union (JT/T 978) purse application, byte for byte: 0x15, 0x16, 0x17, 0x18, 0x1A and 0x1E, and
the 0x15 of the city-card schemes whose layout is public.

Each file is one :class:`protocols.layout.Layout` over a slots dataclass; codes are kept as integers with their enums
offered as ``known_*`` properties, so a card with a code no table lists still parses and writes back unchanged.
"""

from .application import (
    CARDHOLDER_INFO,
    MANAGEMENT_INFO,
    PUBLIC_APP_INFO,
    CardholderInfo,
    CardholderView,
    ManagementInfo,
    PublicAppInfo,
)
from .catalog import (
    CARDHOLDER_SIZE,
    MANAGEMENT_SIZE,
    PROCESS_RECORD_SIZE,
    PUBLIC_APP_INFO_SIZE,
    SFI_CARDHOLDER,
    SFI_MANAGEMENT,
    SFI_PROCESS,
    SFI_PUBLIC_APP_INFO,
    SFI_TRANSACTION_LOG,
    SFI_TRANSIT_LOG,
    TRANSACTION_LOG_RECORD_SIZE,
    TRANSACTION_LOG_RECORDS,
    TRANSIT_RECORD_SIZE,
    TRANSIT_RECORDS,
)
from .city import (
    CHONGQING,
    CITY_APP_INFO,
    SHENZHEN_TONG_INFO,
    SUZHOU_APP_INFO,
    CityAppInfo,
    ShenzhenTongInfo,
    SuzhouAppInfo,
)
from .codes import CardType, Direction, Industry, TradeState, TransactionType, TransitRecordType, known
from .process_records import (
    BUS_PROCESS_RECORD,
    BUS_RECORD_ID,
    BUS_RECORD_IDS,
    METRO_PROCESS_RECORD,
    PROCESS_RECORD_TAG,
    RAW_PROCESS_RECORD,
    BusProcessRecord,
    BusStop,
    MetroProcessRecord,
    ProcessRecord,
    ProcessRecordHeader,
    RawProcessRecord,
    alight_bus,
    blank_bus_record,
    board_bus,
    build_process_record,
    metro_crc,
    metro_crc_ok,
    parse_process_record,
    seal_metro_record,
)
from .transaction_log import TRANSACTION_LOG_RECORD, TransactionLogRecord
from .transit_records import TRANSIT_RECORD, TransitRecord

__all__ = [
    "BUS_PROCESS_RECORD", "CHONGQING", "CITY_APP_INFO", "SHENZHEN_TONG_INFO", "SUZHOU_APP_INFO", "CityAppInfo",
    "ShenzhenTongInfo", "SuzhouAppInfo", "BUS_RECORD_ID", "BUS_RECORD_IDS", "CARDHOLDER_INFO", "CARDHOLDER_SIZE",
    "MANAGEMENT_INFO",
    "MANAGEMENT_SIZE", "METRO_PROCESS_RECORD", "PROCESS_RECORD_SIZE", "PROCESS_RECORD_TAG", "PUBLIC_APP_INFO",
    "PUBLIC_APP_INFO_SIZE", "RAW_PROCESS_RECORD", "SFI_CARDHOLDER", "SFI_MANAGEMENT", "SFI_PROCESS",
    "SFI_PUBLIC_APP_INFO", "SFI_TRANSACTION_LOG", "SFI_TRANSIT_LOG", "TRANSACTION_LOG_RECORD",
    "TRANSACTION_LOG_RECORDS", "TRANSACTION_LOG_RECORD_SIZE", "TRANSIT_RECORD", "TRANSIT_RECORDS",
    "TRANSIT_RECORD_SIZE", "BusProcessRecord", "BusStop", "CardType", "CardholderInfo", "CardholderView",
    "Direction", "Industry", "ManagementInfo", "MetroProcessRecord", "ProcessRecord", "ProcessRecordHeader",
    "PublicAppInfo",
    "RawProcessRecord", "TradeState", "TransactionLogRecord", "TransactionType", "TransitRecord",
    "TransitRecordType", "alight_bus", "blank_bus_record", "board_bus", "build_process_record", "known",
    "metro_crc", "metro_crc_ok", "parse_process_record", "seal_metro_record",
]
