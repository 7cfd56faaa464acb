"""Tests of the SCPI engine with tiny example models (no instrument physics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim_backend.scpi import (
    Command,
    ScpiError,
    ScpiInstrument,
    compile_template,
    definite_block,
    float_block,
    parse_block,
    parse_bool,
    parse_channel_list,
    parse_choice,
    parse_number,
    parse_string,
    scpi,
    split_arguments,
    split_message,
)


class Toy(ScpiInstrument):
    """A two-channel SMU/AWG hybrid exercising every parameter type."""

    idn = "ACME,MODEL 2,0001,1.0"
    suffix_range = (1, 2)

    def __init__(self) -> None:
        super().__init__()
        self.resets = 0
        self.triggers = 0
        self.volt = {1: 0.0, 2: 0.0}
        self.curr = {1: 0.0, 2: 0.0}
        self.width = {1: 1e-3, 2: 1e-3}
        self.prot = {1: 1e-4, 2: 1e-4}
        self.output = {1: False, 2: False}
        self.shape = "DC"
        self.sense = "CURR"
        self.listv: list[float] = []
        self.arb: dict[str, bytes] = {}
        self.text = ""
        self.count: object = 1
        self.step: object = None

    def reset(self) -> None:
        self.resets += 1
        self.volt = {1: 0.0, 2: 0.0}

    def trigger(self) -> None:
        self.triggers += 1

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", nargs=1)
    def _volt(self, cmd: Command) -> None:
        self.volt[cmd.suffix] = cmd.number(0, minimum=-21, maximum=21, default=0, unit="V")

    @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", nargs=0)
    def _volt_q(self, cmd: Command) -> str:
        return f"{self.volt[cmd.suffix]:.6E}"

    @scpi("[:SOURce#]:CURRent[:LEVel]", nargs=1)
    def _curr(self, cmd: Command) -> None:
        self.curr[cmd.suffix] = cmd.number(0, minimum=-1, maximum=1)

    @scpi("[:SOURce#]:CURRent[:LEVel]?", nargs=0)
    def _curr_q(self, cmd: Command) -> str:
        return f"{self.curr[cmd.suffix]:.6E}"

    @scpi(":SOURce#:FUNCtion:PULSe:WIDTh", nargs=1)
    def _width(self, cmd: Command) -> None:
        self.width[cmd.suffix] = cmd.number(0, minimum=16e-9, maximum=1e6, unit="S")

    @scpi(":SOURce#:FUNCtion:PULSe:WIDTh?", nargs=0)
    def _width_q(self, cmd: Command) -> str:
        return f"{self.width[cmd.suffix]:.6E}"

    @scpi(":SOURce#:FUNCtion[:SHAPe]", nargs=1)
    def _shape(self, cmd: Command) -> None:
        self.shape = cmd.choice(0, ("DC", "PULSe", "ARBitrary"))

    @scpi(":SOURce#:FUNCtion[:SHAPe]?", nargs=0)
    def _shape_q(self, cmd: Command) -> str:
        return self.shape

    @scpi(":SOURce#:LIST:VOLTage", nargs=(1, None))
    def _list(self, cmd: Command) -> None:
        self.listv = cmd.numbers(minimum=-21, maximum=21)

    @scpi(":SOURce#:LIST:VOLTage:POINts?", nargs=0)
    def _list_points(self, cmd: Command) -> str:
        return str(len(self.listv))

    @scpi(":SENSe#:CURRent[:DC]:PROTection[:LEVel]", nargs=1)
    def _prot(self, cmd: Command) -> None:
        self.prot[cmd.suffix] = cmd.number(0, minimum=1e-9, maximum=1.5)

    @scpi(":SENSe#:CURRent[:DC]:PROTection[:LEVel]?", nargs=0)
    def _prot_q(self, cmd: Command) -> str:
        return f"{self.prot[cmd.suffix]:.6E}"

    @scpi(":SENSe#:FUNCtion", nargs=1)
    def _sense(self, cmd: Command) -> None:
        self.sense = cmd.choice(0, ("VOLTage", "CURRent", "RESistance"), quoted=None)

    @scpi("OUTPut#[:STATe]", nargs=1)
    def _outp(self, cmd: Command) -> None:
        self.output[cmd.suffix] = cmd.boolean(0)

    @scpi("OUTPut#[:STATe]?", nargs=0)
    def _outp_q(self, cmd: Command) -> str:
        return "1" if self.output[cmd.suffix] else "0"

    @scpi(":INITiate[:IMMediate]", nargs=0)
    def _init(self, cmd: Command) -> None:
        if not self.output[1]:
            raise ScpiError(-221)

    @scpi(":TRACe:DATA?", nargs=(0, 2))
    def _trace(self, cmd: Command) -> bytes:
        n = cmd.number(0, minimum=1, maximum=100, integer=True) if cmd.has(0) else 3
        return float_block(np.arange(n, dtype=float), dtype="float32", byteorder="big")

    @scpi(":DATA:ARBitrary", nargs=2)
    def _arb(self, cmd: Command) -> None:
        self.arb[cmd.arg(0).upper()] = cmd.block(1)

    @scpi(":DATA:ARBitrary?", nargs=1)
    def _arb_q(self, cmd: Command) -> bytes:
        name = cmd.arg(0).upper()
        if name not in self.arb:
            raise ScpiError(-224)
        return definite_block(self.arb[name])

    @scpi(":DISPlay:TEXT", nargs=1)
    def _text(self, cmd: Command) -> None:
        self.text = cmd.string(0)

    @scpi(":DISPlay:TEXT?", nargs=0)
    def _text_q(self, cmd: Command) -> str:
        return '"' + self.text.replace('"', '""') + '"'

    @scpi(":MEASure:CURRent[:DC]?", nargs=(0, 1))
    def _meas(self, cmd: Command) -> str:
        chans = cmd.channels(0) if cmd.has(0) else [1]
        return ",".join(f"{self.volt[c] / 1e3:.6E}" for c in chans)

    @scpi(":TRIGger#:COUNt", nargs=1)
    def _count(self, cmd: Command) -> None:
        self.count = cmd.number(0, minimum=1, maximum=1e6, default=1, keywords=("INFinity",))

    @scpi(":TRIGger#:STEP", nargs=1)
    def _step(self, cmd: Command) -> None:
        self.step = cmd.number(0, keywords=("UP", "DOWN"))

    @scpi(":CALCulate2:VALue?", nargs=0)
    def _calc2(self, cmd: Command) -> str:
        return "2"


class Keysight(Toy):
    error_format = '{code:+d},"{message}"'
    error_queue_size = 20


@pytest.fixture
def toy() -> Toy:
    return Toy()


def errors(inst: ScpiInstrument) -> list[int]:
    return [code for code, _ in inst.errors]


# -- templates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        ":SOUR:VOLT",
        ":SOURCE:VOLTAGE",
        ":sour:volt",
        ":Source:Voltage:Level:Immediate:Amplitude",
        ":VOLT",
        ":VOLT:LEV",
        ":SOUR:VOLT:IMM:AMPL",
        ":SOUR2:VOLT",
        ":SOURCE1:VOLT:LEVEL",
    ],
)
def test_template_accepts_short_long_and_optional_forms(header: str) -> None:
    regex, groups, query = compile_template("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    assert not query
    assert groups[0] is True  # the '#' suffix is handed to the handler
    assert regex.fullmatch(header.upper())


@pytest.mark.parametrize("header", [":SOURC:VOLT", ":SOU:VOLT", ":SOUR:VOLTA", ":SOUR:VOLT?"])
def test_template_rejects_other_abbreviations(header: str) -> None:
    regex, _, _ = compile_template("[:SOURce#]:VOLTage[:LEVel]")
    assert regex.fullmatch(header) is None


def test_template_query_and_common() -> None:
    regex, groups, query = compile_template("*IDN?")
    assert query and groups == () and regex.fullmatch("*IDN?")
    regex, _, query = compile_template(":SYSTem:ERRor[:NEXT]?")
    assert query and regex.fullmatch(":SYST:ERR?") and regex.fullmatch(":SYSTEM:ERROR:NEXT?")
    assert regex.fullmatch(":SYST:ERR") is None


def test_malformed_template_fails_at_definition() -> None:
    with pytest.raises(ValueError):
        compile_template(":SOURce:vOLTage")
    with pytest.raises(ValueError):
        scpi(":SOUR?:VOLT")


# -- dispatch ------------------------------------------------------------------------------------


def test_set_and_query_long_short_case_insensitive(toy: Toy) -> None:
    assert toy.handle(":SOUR:VOLT 1.5") is None
    assert toy.handle(":source:voltage:level:immediate:amplitude?") == b"1.500000E+00\n"
    assert toy.handle("volt -2e-1") is None
    assert toy.handle("VOLT?") == b"-2.000000E-01\n"
    assert toy.handle(":sOuR:VoLt:LeV 3") is None
    assert toy.volt[1] == 3.0
    assert not toy.errors


def test_bytes_in_bytes_out(toy: Toy) -> None:
    assert toy.handle(b"*IDN?\n") == b"ACME,MODEL 2,0001,1.0\n"


def test_numeric_suffix_default_value_and_range(toy: Toy) -> None:
    toy.handle(":SOUR2:VOLT 4;:SOUR1:VOLT 1")
    assert toy.volt == {1: 1.0, 2: 4.0}
    assert toy.handle(":SOUR2:VOLT?;:SOUR:VOLT?") == b"4.000000E+00;1.000000E+00\n"
    toy.handle(":SOUR3:VOLT 1")
    toy.handle(":SOUR0:VOLT 1")
    assert errors(toy) == [-114, -114]
    toy.handle("*CLS")
    toy.handle(":SYST2:ERR?")  # suffix on a node that takes none
    toy.handle(":CALC3:VAL?")  # literal CALCulate2 only
    assert errors(toy) == [-114, -113]
    assert toy.handle(":CALC2:VAL?") == b"2\n"


def test_suffix_on_several_nodes(toy: Toy) -> None:
    toy.handle(":SOUR2:FUNC:PULS:WIDT 5e-6;:SENS2:CURR:PROT 1e-3")
    assert toy.width[2] == 5e-6 and toy.prot[2] == 1e-3
    assert toy.handle("OUTP2 ON;OUTP2?;:OUTP?") == b"1;0\n"


@pytest.mark.parametrize("header", ["SOURC:VOLT 1", "SOUR:VOLTA 1", "SOURCES:VOLT 1", "VOL 1"])
def test_rejected_abbreviations_give_undefined_header(toy: Toy, header: str) -> None:
    assert toy.handle(header) is None
    assert errors(toy) == [-113]
    assert toy.volt[1] == 0.0


def test_query_form_and_setting_form_are_distinct(toy: Toy) -> None:
    toy.handle("*IDN")
    toy.handle(":INIT?")
    assert errors(toy) == [-113, -113]


# -- program messages ----------------------------------------------------------------------------


def test_relative_path_after_semicolon(toy: Toy) -> None:
    toy.handle(":SOUR:VOLT 1;CURR 0.25")
    assert toy.volt[1] == 1.0 and toy.curr[1] == 0.25
    toy.handle(":SOUR2:FUNC:PULS:WIDT 1e-6;:SOUR2:VOLT 2;CURR 0.5")
    assert toy.volt[2] == 2.0 and toy.curr[2] == 0.5
    assert toy.handle(":SENS2:CURR:PROT 1e-3;PROT?") == b"1.000000E-03\n"
    assert not toy.errors


def test_relative_path_resolves_only_below_the_last_node(toy: Toy) -> None:
    toy.handle(":SOUR:VOLT 1;OUTP ON")  # means :SOUR:OUTP, which does not exist
    assert errors(toy) == [-113]
    assert toy.output[1] is False


def test_colon_after_semicolon_resets_to_root(toy: Toy) -> None:
    toy.handle(":SOUR:VOLT 1;:OUTP ON;:VOLT 2")
    assert toy.output[1] is True and toy.volt[1] == 2.0
    assert not toy.errors


def test_common_commands_keep_the_path(toy: Toy) -> None:
    toy.handle(":SOUR:VOLT 1;*CLS;CURR 0.5;*WAI;VOLT?")
    assert toy.curr[1] == 0.5
    assert not toy.errors


def test_replies_of_one_message_are_joined(toy: Toy) -> None:
    toy.handle(":SOUR:VOLT 2")
    reply = toy.handle(":SOUR:VOLT?;CURR?;:OUTP?;*IDN?;*OPC?")
    assert reply == b"2.000000E+00;0.000000E+00;0;ACME,MODEL 2,0001,1.0;1\n"


def test_trailing_semicolon_whitespace_and_leading_colon_common(toy: Toy) -> None:
    assert toy.handle("*RST;:stat:pres;:*CLS;") is None
    assert toy.handle("  :SOUR:VOLT 1 ;  VOLT? ; \r\n") == b"1.000000E+00\n"
    assert toy.resets == 1
    assert not toy.errors


def test_quoted_strings_may_contain_semicolons_and_quotes(toy: Toy) -> None:
    assert toy.handle(':DISP:TEXT "a;b"";c";:DISP:TEXT?') == b'"a;b"";c"\n'
    assert toy.text == 'a;b";c'
    toy.handle(":DISP:TEXT 'x;y'")
    assert toy.text == "x;y"
    toy.handle(':SENS:FUNC "CURR";:SENS:FUNC VOLT')
    assert toy.sense == "VOLT"


def test_definite_block_may_contain_semicolons_and_newlines(toy: Toy) -> None:
    payload = b";\n\xff;:SOUR:VOLT 9;\n"
    msg = b":DATA:ARB WAVE," + definite_block(payload) + b";:SOUR:VOLT 2;:DATA:ARB? WAVE\n"
    reply = toy.handle(msg)
    assert toy.arb["WAVE"] == payload
    assert toy.volt[1] == 2.0
    assert reply == definite_block(payload) + b"\n"
    assert not toy.errors


def test_block_ending_with_newline_is_kept_intact(toy: Toy) -> None:
    payload = b"ab\n"
    toy.handle(b":DATA:ARB W, " + definite_block(payload))
    assert toy.arb["W"] == payload


def test_indefinite_block_runs_to_end_of_message(toy: Toy) -> None:
    toy.handle(b":DATA:ARB W,#0a;b\nc\n")
    assert toy.arb["W"] == b"a;b\nc"


def test_malformed_block_executes_preceding_commands_only(toy: Toy) -> None:
    toy.handle(":SOUR:VOLT 1;:DATA:ARB W,#3ab;:SOUR:VOLT 2")
    assert toy.volt[1] == 1.0
    assert errors(toy) == [-161]


def test_unterminated_string_is_an_error(toy: Toy) -> None:
    toy.handle(':SOUR:VOLT 1;:DISP:TEXT "abc;:SOUR:VOLT 2')
    assert toy.volt[1] == 1.0
    assert errors(toy) == [-151]


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (":BOGUS 1", -113),
        (":SOUR::VOLT 1", -102),
        (":SOUR:VOLT& 1", -101),
        (":SOUR:VOLT", -109),
        (":SOUR:VOLT 1,2", -108),
        ("*IDN? 1", -108),
        (':SOUR:VOLT "1"', -104),
        (":SOUR:VOLT ABC", -104),
        (":SOUR:VOLT 1.2.3", -121),
        (":SOUR:VOLT 1 A", -131),
        (":SOUR:CURR 1 A", -138),
        (":SOUR:VOLT 22", -222),
        (":SOUR:FUNC SQUare", -224),
        (":SOUR:FUNC PULSEX", -224),
        ("OUTP MAYBE", -224),
        (":INIT", -221),
        (":MEAS:CURR? 1", -104),
        ("*ESE 256", -222),
    ],
)
def test_error_codes(toy: Toy, message: str, code: int) -> None:
    assert toy.handle(message) is None
    assert errors(toy) == [code]


def test_error_discards_rest_of_message_but_keeps_earlier_replies(toy: Toy) -> None:
    reply = toy.handle(":SOUR:VOLT 1;:SOUR:VOLT?;:BOGUS;:SOUR:VOLT 2;:SOUR:VOLT?")
    assert reply == b"1.000000E+00\n"
    assert toy.volt[1] == 1.0
    assert errors(toy) == [-113]


def test_execution_error_also_discards_rest_by_default(toy: Toy) -> None:
    toy.handle(":SOUR:VOLT 50;:SOUR:CURR 0.5")
    assert toy.curr[1] == 0.0
    assert errors(toy) == [-222]


def test_stop_on_error_false_continues_after_execution_errors_only() -> None:
    class Lenient(Toy):
        stop_on_error = False

    inst = Lenient()
    inst.handle(":SOUR:VOLT 50;:SOUR:CURR 0.5;:BOGUS;:SOUR:VOLT 3")
    assert inst.curr[1] == 0.5
    assert inst.volt[1] == 0.0
    assert errors(inst) == [-222, -113]


def test_failing_query_gives_no_reply(toy: Toy) -> None:
    assert toy.handle(":SOUR3:VOLT?") is None
    assert toy.handle(":SYST:ERR?") == b'-114,"Header suffix out of range"\n'


def test_error_queue_format_2450_style(toy: Toy) -> None:
    toy.handle(":BOGUS")
    assert toy.handle(":SYST:ERR:COUN?") == b"1\n"
    assert toy.handle(":SYST:ERR?") == b'-113,"Undefined header"\n'
    assert toy.handle(":SYSTem:ERRor:NEXT?") == b'0,"No error"\n'


def test_error_queue_format_keysight_style() -> None:
    inst = Keysight()
    assert inst.handle("SYST:ERR?") == b'+0,"No error"\n'
    inst.handle("BOGUS;")
    inst.handle("SOUR1:VOLT 99")
    assert inst.handle("SYST:ERR:ALL?") == b'-113,"Undefined header",-222,"Data out of range"\n'
    assert inst.handle("SYST:ERR:ALL?") == b'+0,"No error"\n'


def test_custom_error_message_from_handler() -> None:
    class Custom(Toy):
        @scpi(":SYSTem:BEEPer", nargs=0)
        def _beep(self, cmd: Command) -> None:
            raise ScpiError(-200, "Execution error; beeper disabled")

    inst = Custom()
    inst.handle(":SYST:BEEP")
    assert inst.handle(":SYST:ERR?") == b'-200,"Execution error; beeper disabled"\n'


def test_queue_overflow_replaces_last_entry() -> None:
    inst = Toy()
    for _ in range(12):
        inst.handle(":BOGUS")
    assert len(inst.errors) == inst.error_queue_size == 10
    assert errors(inst)[:9] == [-113] * 9
    assert errors(inst)[-1] == -350
    replies = [inst.handle(":SYST:ERR?") for _ in range(11)]
    assert replies[9] == b'-350,"Queue overflow"\n'
    assert replies[10] == b'0,"No error"\n'


def test_cls_clears_queue_and_event_status(toy: Toy) -> None:
    toy.handle(":BOGUS")
    toy.handle("*CLS")
    assert toy.handle(":SYST:ERR?;*ESR?") == b'0,"No error";0\n'


# -- status registers ----------------------------------------------------------------------------


def test_esr_bits_by_error_class(toy: Toy) -> None:
    toy.handle(":BOGUS")
    assert toy.handle("*ESR?") == b"32\n"  # CME
    assert toy.handle("*ESR?") == b"0\n"  # read clears
    toy.handle(":SOUR:VOLT 99")
    assert toy.handle("*ESR?") == b"16\n"  # EXE
    toy.query_interrupted()
    toy.query_unterminated()
    assert toy.handle("*ESR?") == b"4\n"  # QYE
    toy.handle("*OPC")
    assert toy.handle("*ESR?") == b"1\n"  # OPC
    toy.push_error(-350)
    assert toy.handle("*ESR?") == b"8\n"  # DDE
    assert errors(toy) == [-113, -222, -410, -420, -350]


def test_status_byte_ese_sre(toy: Toy) -> None:
    assert toy.handle("*STB?") == b"0\n"
    toy.handle("*ESE 32;*SRE 32")
    assert toy.handle("*ESE?;*SRE?") == b"32;32\n"
    toy.handle(":BOGUS")
    stb = int(toy.handle("*STB?") or b"0")
    assert stb & 0x04  # EAV: error queue not empty
    assert stb & 0x20  # ESB: CME enabled by *ESE
    assert stb & 0x40  # MSS: ESB enabled by *SRE
    toy.handle("*CLS")
    assert toy.handle("*STB?") == b"0\n"


def test_common_command_hooks(toy: Toy) -> None:
    toy.handle(":SOUR:VOLT 1;*RST;*TRG;*TRG")
    assert toy.resets == 1 and toy.volt[1] == 0.0 and toy.triggers == 2
    assert toy.handle("*OPC?;*TST?;:SYST:VERS?") == b"1;0;1999.0\n"


# -- declaration styles --------------------------------------------------------------------------


def test_dict_table_and_subclass_override() -> None:
    class Derived(Toy):
        scpi_commands = {":SYSTem:LANGuage?": "_lang"}  # noqa: RUF012

        def _lang(self, cmd: Command) -> str:
            return '"SCPI"'

        @scpi("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", nargs=0)
        def _volt_q2(self, cmd: Command) -> str:
            return "overridden"

    inst = Derived()
    assert inst.handle(":SYST:LANG?;:VOLT?") == b'"SCPI";overridden\n'
    assert Toy().handle(":VOLT?") == b"0.000000E+00\n"
    assert Toy().handle(":SYST:LANG?") is None


def test_idn_from_constructor_and_custom_termination() -> None:
    class Crlf(ScpiInstrument):
        termination = "\r\n"

    inst = Crlf(idn="X,Y,Z,1")
    assert inst.handle("*IDN?") == b"X,Y,Z,1\r\n"


def test_repeated_headers_use_cache_consistently(toy: Toy) -> None:
    for value in (1, 2, 3):
        toy.handle(f":SOUR:VOLT {value}")
        assert toy.handle(":sour:volt?") == f"{value:.6E}".encode() + b"\n"
    toy.handle("SOURC:VOLT 1")
    toy.handle("SOURC:VOLT 1")
    assert errors(toy) == [-113, -113]


# -- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1.0), ("-2.5", -2.5), ("+.5", 0.5), ("1e-3", 1e-3), ("1.5E+2", 150.0), ("#H1F", 31.0)],
)
def test_parse_number_plain(text: str, value: float) -> None:
    assert parse_number(text) == pytest.approx(value)


def test_parse_number_specials() -> None:
    kw = {"minimum": -1.0, "maximum": 2.0, "default": 0.5}
    assert parse_number("MIN", **kw) == -1.0
    assert parse_number("maximum", **kw) == 2.0
    assert parse_number("DEF", **kw) == 0.5
    assert parse_number("INF", keywords=("INFinity",)) == math.inf
    assert parse_number("ninf", keywords=("NINFinity",)) == -math.inf
    assert parse_number("UP", keywords=("UP", "DOWN")) == "UP"
    assert parse_number("4.6", integer=True) == 5
    assert parse_number("5", minimum=0, maximum=3, clip=True) == 3
    with pytest.raises(ScpiError) as e:
        parse_number("MAX")
    assert e.value.code == -224
    with pytest.raises(ScpiError) as e:
        parse_number("3", maximum=2)
    assert e.value.code == -222


@pytest.mark.parametrize(
    ("text", "unit", "value"),
    [("100 mV", "V", 0.1), ("5uS", "S", 5e-6), ("2 MHZ", "HZ", 2e6), ("1 KHZ", "HZ", 1e3)],
)
def test_parse_number_units(text: str, unit: str, value: float) -> None:
    assert parse_number(text, unit=unit) == pytest.approx(value)


def test_trigger_count_and_step_keywords(toy: Toy) -> None:
    toy.handle(":TRIG:COUN INF")
    assert toy.count == math.inf
    toy.handle(":TRIG:COUN MIN")
    assert toy.count == 1
    toy.handle(":TRIG:STEP DOWN")
    assert toy.step == "DOWN"
    toy.handle(":TRIG:STEP 0.1")
    assert toy.step == 0.1
    toy.handle(":SOUR:FUNC:PULS:WIDT 100 ns")
    assert toy.width[1] == pytest.approx(1e-7)


@pytest.mark.parametrize(
    ("text", "value"), [("ON", True), ("off", False), ("1", True), ("0", False)]
)
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_parse_choice_short_long_and_quoted() -> None:
    opts = ("VOLTage", "CURRent")
    assert parse_choice("volt", opts) == "VOLT"
    assert parse_choice("CURRENT", opts) == "CURR"
    assert parse_choice('"CURR"', opts, quoted=True) == "CURR"
    assert parse_choice("'voltage'", opts, quoted=None) == "VOLT"
    for bad, code in (("VOLTA", -224), ('"VOLT"', -104)):
        with pytest.raises(ScpiError) as e:
            parse_choice(bad, opts)
        assert e.value.code == code


def test_parse_string_and_channels_and_lists(toy: Toy) -> None:
    assert parse_string('"defbuffer1"') == "defbuffer1"
    assert parse_string("'it''s'") == "it's"
    assert parse_channel_list("(@1)") == [1]
    assert parse_channel_list("(@1,2)") == [1, 2]
    assert parse_channel_list("(@1:3)") == [1, 2, 3]
    assert parse_channel_list("(@3:1,5)") == [3, 2, 1, 5]
    toy.handle(":SOUR:VOLT 2;:SOUR2:VOLT 4")
    assert toy.handle(":MEAS:CURR? (@1,2)") == b"2.000000E-03,4.000000E-03\n"
    toy.handle(":SOUR:LIST:VOLT 1, 2.5,-3e-1 ,0")
    assert toy.listv == [1.0, 2.5, -0.3, 0.0]
    assert toy.handle(":SOUR:LIST:VOLT:POIN?") == b"4\n"


def test_split_helpers() -> None:
    assert split_arguments(' 1, "a,b" ,(@1,2), #13abc ,x') == [
        "1",
        '"a,b"',
        "(@1,2)",
        "#13abc",
        "x",
    ]
    units, err = split_message(':A "x;y";B #12;;;C')
    assert units == [':A "x;y"', "B #12;;", "C"]
    assert err is None


def test_blocks_roundtrip() -> None:
    assert definite_block(b"abc") == b"#13abc"
    assert definite_block(b"x" * 12) == b"#212" + b"x" * 12
    assert parse_block("#13abc") == b"abc"
    assert parse_block(b"#0\x00\x01") == b"\x00\x01"
    values = [0.0, -1.5, 3.25]
    for dtype, byteorder, np_dtype in [
        ("float32", "little", "<f4"),
        ("float32", "big", ">f4"),
        ("float64", "little", "<f8"),
        ("float64", "big", ">f8"),
    ]:
        block = float_block(values, dtype=dtype, byteorder=byteorder)
        assert np.frombuffer(parse_block(block), dtype=np_dtype).tolist() == values


def test_binary_reply(toy: Toy) -> None:
    reply = toy.handle(":TRAC:DATA? 4")
    assert reply is not None and reply.endswith(b"\n")
    assert np.frombuffer(parse_block(reply[:-1]), dtype=">f4").tolist() == [0, 1, 2, 3]


# -- message shapes: new numbers replay a cached parse ---------------------------------------------

_SHAPED = [
    ":SOUR:VOLT {a}",
    ":SOUR2:VOLT {a} V;:SOUR2:VOLT?",
    ":SOUR:VOLT {a};CURR {b};:SOUR:CURR?;:SOUR:VOLT?",
    ":SOUR1:LIST:VOLT {a},{b} , {c};:SOUR1:LIST:VOLT:POIN?",
    ':DISP:TEXT "v {a}, {b}";:DISP:TEXT?',
    ":MEAS:CURR? (@1,2);:SOUR2:VOLT {b}",
    ":SENS2:CURR:PROT {a};:SENS2:CURR:PROT?",
    ":TRIG:COUN {a};:INIT",
    ":SOUR:FUNC:PULS:WIDT {a} ms;:SOUR1:FUNC:PULS:WIDT?",
]


def test_messages_of_one_shape_replay_exactly_what_a_fresh_parse_does() -> None:
    """Random numbers (in range, out of range, signs, exponents) through the shape cache and
    through the uncached parser: identical replies, error queues and instrument state."""
    rng = np.random.default_rng(11)
    cached, fresh = Toy(), Toy()

    def number() -> str:
        x = float(rng.choice([1.0, -1.0])) * 10 ** float(rng.uniform(-4, 1.6))
        return str(rng.choice([f"{x:.6g}", f"{x:+.3E}", f"{abs(x):.0f}", f"{x:.9g}"]))

    for _ in range(400):
        template = _SHAPED[int(rng.integers(len(_SHAPED)))]
        message = template.format(a=number(), b=number(), c=number()).encode()
        assert cached.handle(message) == fresh._handle_parse(message), message
        assert list(cached.errors) == list(fresh.errors), message
        state = ("volt", "curr", "width", "prot", "listv", "text", "count")
        assert [getattr(cached, k) for k in state] == [getattr(fresh, k) for k in state]
    assert Toy._scpi_shapes  # the replays went through the shape cache
