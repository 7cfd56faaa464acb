"""SMU drivers: exact wire traffic per model (2450 SCPI, 2600B TSP, B2900 SCPI)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dendrolab.errors import ComplianceError, InstrumentError, ParameterError
from instruments.base import CapabilityError, UserLimits
from instruments.smu import B2900_MODELS, K2450, K2600B_MODELS, Smu
from tests.instruments import FakeResource

K2636B = K2600B_MODELS[2]
B2902A = B2900_MODELS[1]
B2911A = B2900_MODELS[0]


def make(spec, replies=None, **kwargs):
    fake = FakeResource(replies)
    smu = Smu(fake, spec, **kwargs)
    smu.ramp_step_s = 0.0
    return smu, fake


# --- Keithley 2450 -------------------------------------------------------------------------


class TestKeithley2450:
    def test_configure_source_voltage_autorange(self):
        smu, fake = make(K2450)
        smu.configure_source_voltage(limit_a=1e-3)
        assert fake.commands == [
            ":SOUR:FUNC VOLT",
            ":SOUR:VOLT:ILIM 0.001",
            ":SOUR:VOLT:RANG:AUTO ON",
            ":SYST:ERR?",
        ]

    def test_configure_source_voltage_fixed_range_and_level_and_output(self):
        smu, fake = make(K2450)
        smu.configure_source_voltage(limit_a=1e-4, range_v=2.0)
        smu.set_voltage(0.5)
        smu.output_on()
        smu.output_off()
        assert fake.commands == [
            ":SOUR:FUNC VOLT",
            ":SOUR:VOLT:ILIM 0.0001",
            ":SOUR:VOLT:RANG 2",
            ":SYST:ERR?",
            ":SOUR:VOLT 0.5",
            ":OUTP ON",
            ":OUTP OFF",
        ]

    def test_configure_source_current(self):
        smu, fake = make(K2450)
        smu.configure_source_current(limit_v=2.0, range_a=1e-3)
        smu.set_current(1e-6)
        assert fake.commands == [
            ":SOUR:FUNC CURR",
            ":SOUR:CURR:VLIM 2",
            ":SOUR:CURR:RANG 0.001",
            ":SYST:ERR?",
            ":SOUR:CURR 1e-06",
        ]

    def test_configure_measure_fixed_range(self):
        smu, fake = make(K2450)
        smu.configure_measure(nplc=0.1, range_a=1e-6)
        assert fake.commands == [
            ':SENS:FUNC "CURR"',
            ":SENS:CURR:RANG:AUTO OFF",
            ":SENS:CURR:RANG 1e-06",
            ":SENS:CURR:NPLC 0.1",
            ":SYST:ERR?",
        ]

    def test_configure_measure_aperture_becomes_nplc(self):
        smu, fake = make(K2450, line_frequency_hz=60.0)
        smu.configure_measure(aperture_s=0.05)
        assert fake.commands == [
            ':SENS:FUNC "CURR"',
            ":SENS:CURR:RANG:AUTO ON",
            ":SENS:CURR:NPLC 3",
            ":SYST:ERR?",
        ]

    def test_measure_voltage_source(self):
        smu, fake = make(K2450, {':READ? "defbuffer1",READ,SOUR': "1.5E-06,5.000000E-01"})
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        reading = smu.measure_iv()
        assert (reading.current_a, reading.voltage_v) == (1.5e-6, 0.5)
        assert smu.measure_current() == 1.5e-6
        assert fake.commands == [':READ? "defbuffer1",READ,SOUR'] * 2

    def test_measure_current_source_swaps_columns(self):
        smu, fake = make(K2450, {':READ? "defbuffer1",READ,SOUR': "3.0E-01,1.0E-06"})
        smu.configure_source_current(limit_v=1.0)
        smu.configure_measure(nplc=1, range_v=2.0)
        reading = smu.measure_iv()
        assert (reading.current_a, reading.voltage_v) == (1e-6, 0.3)
        assert fake.commands[4:9] == [
            ':SENS:FUNC "VOLT"',
            ":SENS:VOLT:RANG:AUTO OFF",
            ":SENS:VOLT:RANG 2",
            ":SENS:VOLT:NPLC 1",
            ":SYST:ERR?",
        ]

    def test_trip_state(self):
        smu, fake = make(K2450, {":SOUR:VOLT:ILIM:TRIP?": ["0", "1"]})
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        assert smu.in_compliance() is False
        with pytest.raises(ComplianceError, match="compliance"):
            smu.check_compliance()
        assert fake.commands == [":SOUR:VOLT:ILIM:TRIP?"] * 2

    def test_list_sweep(self):
        data = "0,1e-9,0,0.5,5e-7,0.01,1,1e-6,0.02"
        smu, fake = make(K2450, {':TRAC:DATA? 1,3,"defbuffer1",SOUR,READ,REL': data})
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        result = smu.list_sweep([0.0, 0.5, 1.0], delay_s=0.01)
        assert fake.commands == [
            ':TRAC:CLE "defbuffer1"',
            ":SOUR:LIST:VOLT 0,0.5,1",
            ":SOUR:SWE:VOLT:LIST 1,0.01",
            ":OUTP ON",
            ":INIT",
            "*OPC?",
            ':TRAC:DATA? 1,3,"defbuffer1",SOUR,READ,REL',
            ":SYST:ERR?",
        ]
        np.testing.assert_array_equal(result.voltage_v, [0.0, 0.5, 1.0])
        np.testing.assert_array_equal(result.current_a, [1e-9, 5e-7, 1e-6])
        np.testing.assert_array_equal(result.time_s, [0.0, 0.01, 0.02])
        assert fake.timeouts_seen[-2] > 2000.0 and fake.timeout == 2000.0

    def test_long_list_is_sent_in_chunks_of_100(self):
        levels = [round(0.001 * k, 3) for k in range(250)]
        data = ",".join("0" for _ in range(3 * 250))
        smu, fake = make(K2450, {':TRAC:DATA? 1,250,"defbuffer1",SOUR,READ,REL': data})
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        smu.list_sweep(levels)
        cmds = fake.commands
        assert cmds[1] == ":SOUR:LIST:VOLT " + ",".join(format(v, ".9g") for v in levels[:100])
        assert cmds[2] == ":SOUR:LIST:VOLT:APP " + ",".join(
            format(v, ".9g") for v in levels[100:200]
        )
        assert cmds[3] == ":SOUR:LIST:VOLT:APP " + ",".join(format(v, ".9g") for v in levels[200:])
        assert cmds[4] == ":SOUR:SWE:VOLT:LIST 1,0"

    def test_linear_sweep(self):
        data = ",".join(["0,0,0", "0.5,1e-7,0.1", "1,2e-7,0.2"])
        smu, fake = make(K2450, {':TRAC:DATA? 1,3,"defbuffer1",SOUR,READ,REL': data})
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        result = smu.linear_sweep(0.0, 1.0, 3, delay_s=0.1)
        assert fake.commands == [
            ':TRAC:CLE "defbuffer1"',
            ':SOUR:SWE:VOLT:LIN 0,1,3,0.1,1,BEST,OFF,OFF,"defbuffer1"',
            ":OUTP ON",
            ":INIT",
            "*OPC?",
            ':TRAC:DATA? 1,3,"defbuffer1",SOUR,READ,REL',
            ":SYST:ERR?",
        ]
        np.testing.assert_array_equal(result.current_a, [0.0, 1e-7, 2e-7])

    def test_short_sweep_data_is_an_instrument_error(self):
        smu, _ = make(K2450, {':TRAC:DATA? 1,3,"defbuffer1",SOUR,READ,REL': "0,1e-9,0"})
        smu.configure_source_voltage(limit_a=1e-3)
        with pytest.raises(InstrumentError, match="3 values, expected 3 points x 3"):
            smu.list_sweep([0.0, 0.5, 1.0])

    def test_no_pulse_mode(self):
        smu, fake = make(K2450)
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        with pytest.raises(CapabilityError, match="no hardware pulse mode"):
            smu.pulsed_list_sweep([1.0], width_s=1e-3, period_s=1e-2)
        assert fake.commands == []

    def test_safe_state_ramps_down_then_output_off(self):
        smu, fake = make(K2450, {":SOUR:VOLT?": "1.000000E+00"})
        smu.safe_state()
        assert fake.commands == [
            ":SOUR:VOLT?",
            ":SOUR:VOLT 0.8",
            ":SOUR:VOLT 0.6",
            ":SOUR:VOLT 0.4",
            ":SOUR:VOLT 0.2",
            ":SOUR:VOLT 0",
            ":OUTP OFF",
        ]

    def test_safe_state_of_a_current_source_ramps_current(self):
        smu, fake = make(K2450, {":SOUR:CURR?": "0"})
        smu.configure_source_current(limit_v=1.0)
        fake.clear_traffic()
        smu.safe_state()
        assert fake.commands == [":SOUR:CURR?", ":SOUR:CURR 0", ":OUTP OFF"]

    def test_context_manager_calls_safe_state(self):
        smu, fake = make(K2450, {":SOUR:VOLT?": "0"})
        with smu as s:
            assert s is smu
        assert fake.commands == [":SOUR:VOLT?", ":SOUR:VOLT 0", ":OUTP OFF"]

    def test_settings_snapshot(self):
        replies = {
            ":OUTP?": "1",
            ":SOUR:FUNC?": "VOLT",
            ":SOUR:VOLT?": "5.0E-01",
            ":SOUR:VOLT:ILIM?": "1.0E-03",
            ":SENS:FUNC?": '"CURR:DC"',
            ":SENS:CURR:NPLC?": "1",
            ":SENS:CURR:RANG:AUTO?": "1",
            ":SENS:CURR:RANG?": "1.0E-04",
        }
        smu, fake = make(K2450, replies, limits=UserLimits(-1.0, 1.0, 1e-3))
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        snap = smu.settings()
        assert fake.commands == list(replies)
        assert snap["instrument"]["source_limit"] == "1.0E-03"
        assert snap["source_mode"] == "v" and snap["source_limit"] == 1e-3
        assert snap["user_limits"] == {
            "voltage_min_v": -1.0,
            "voltage_max_v": 1.0,
            "current_max_a": 1e-3,
        }
        assert snap["model"] == "Keithley 2450" and snap["channel"] == 1


# --- Keithley 2600B ------------------------------------------------------------------------


class TestKeithley2600B:
    def test_configure_source_and_measure_on_smub(self):
        smu, fake = make(K2636B, channel=2)
        smu.configure_source_voltage(limit_a=1e-4, range_v=2.0)
        smu.configure_measure(nplc=1.0)
        smu.set_voltage(0.25)
        smu.output_on()
        assert fake.commands == [
            "smub.source.func = smub.OUTPUT_DCVOLTS",
            "smub.source.limiti = 0.0001",
            "smub.source.rangev = 2",
            "print(errorqueue.count)",
            "smub.measure.autorangei = smub.AUTORANGE_ON",
            "smub.measure.nplc = 1",
            "print(errorqueue.count)",
            "smub.source.levelv = 0.25",
            "smub.source.output = smub.OUTPUT_ON",
        ]

    def test_source_current_and_fixed_measure_range(self):
        smu, fake = make(K2636B)
        smu.configure_source_current(limit_v=5.0)
        smu.configure_measure(nplc=0.01, range_v=2.0)
        smu.set_current(-1e-6)
        assert fake.commands == [
            "smua.source.func = smua.OUTPUT_DCAMPS",
            "smua.source.limitv = 5",
            "smua.source.autorangei = smua.AUTORANGE_ON",
            "print(errorqueue.count)",
            "smua.measure.autorangev = smua.AUTORANGE_OFF",
            "smua.measure.rangev = 2",
            "smua.measure.nplc = 0.01",
            "print(errorqueue.count)",
            "smua.source.leveli = -1e-06",
        ]

    def test_measure_and_trip(self):
        smu, fake = make(
            K2636B,
            {
                "print(smua.measure.iv())": "1.00000e-06\t2.50000e-01",
                "print(smua.source.compliance)": "true",
            },
        )
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        reading = smu.measure_iv()
        assert (reading.current_a, reading.voltage_v) == (1e-6, 0.25)
        assert smu.in_compliance() is True
        assert fake.commands == ["print(smua.measure.iv())", "print(smua.source.compliance)"]

    def test_list_sweep(self):
        printbuffer = (
            "printbuffer(1, 2, smua.nvbuffer1.readings, smua.nvbuffer2.readings, "
            "smua.nvbuffer1.timestamps)"
        )
        data = "1.00000e-09, 0.00000e+00, 0.00000e+00, 2.00000e-06, 1.00000e+00, 2.10000e-02"
        smu, fake = make(K2636B, {printbuffer: data})
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        result = smu.list_sweep([0.0, 1.0], delay_s=0.001)
        assert fake.commands == [
            "format.data = format.ASCII",
            "smua.nvbuffer1.clear()",
            "smua.nvbuffer2.clear()",
            "smua.nvbuffer1.collecttimestamps = 1",
            "smua.measure.delay = 0.001",
            "smua.trigger.source.listv({0,1})",
            "smua.trigger.source.action = smua.ENABLE",
            "smua.trigger.measure.iv(smua.nvbuffer1, smua.nvbuffer2)",
            "smua.trigger.measure.action = smua.ENABLE",
            "smua.trigger.source.stimulus = 0",
            "smua.trigger.endpulse.stimulus = 0",
            "smua.trigger.endpulse.action = smua.SOURCE_HOLD",
            "smua.trigger.count = 2",
            "smua.trigger.arm.count = 1",
            "smua.source.output = smua.OUTPUT_ON",
            "smua.trigger.initiate()",
            "waitcomplete()",
            printbuffer,
            "print(errorqueue.count)",
        ]
        np.testing.assert_array_equal(result.current_a, [1e-9, 2e-6])
        np.testing.assert_array_equal(result.voltage_v, [0.0, 1.0])
        np.testing.assert_array_equal(result.time_s, [0.0, 0.021])

    def test_linear_sweep(self):
        printbuffer = (
            "printbuffer(1, 3, smub.nvbuffer1.readings, smub.nvbuffer2.readings, "
            "smub.nvbuffer1.timestamps)"
        )
        smu, fake = make(K2636B, {printbuffer: "0, -1, 0, 0, 0, 0.1, 0, 1, 0.2"}, channel=2)
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        result = smu.linear_sweep(-1.0, 1.0, 3)
        assert fake.commands[4:6] == [
            "smub.measure.delay = 0",
            "smub.trigger.source.linearv(-1, 1, 3)",
        ]
        assert fake.commands[-3:] == ["waitcomplete()", printbuffer, "print(errorqueue.count)"]
        np.testing.assert_array_equal(result.voltage_v, [-1.0, 0.0, 1.0])

    def test_pulsed_list_sweep(self):
        printbuffer = (
            "printbuffer(1, 3, smua.nvbuffer1.readings, smua.nvbuffer2.readings, "
            "smua.nvbuffer1.timestamps)"
        )
        smu, fake = make(K2636B, {printbuffer: ",".join(["1e-6"] * 9)})
        smu.configure_source_voltage(limit_a=1e-3)
        smu.configure_measure(nplc=0.01)  # 0.2 ms at 50 Hz
        fake.clear_traffic()
        smu.pulsed_list_sweep([1.0, 2.0, 3.0], width_s=1e-3, period_s=1e-2, base_v=0.0)
        assert fake.commands == [
            "format.data = format.ASCII",
            "smua.nvbuffer1.clear()",
            "smua.nvbuffer2.clear()",
            "smua.nvbuffer1.collecttimestamps = 1",
            "smua.source.levelv = 0",
            "smua.measure.delay = 0.0007",
            "smua.trigger.source.listv({1,2,3})",
            "smua.trigger.source.action = smua.ENABLE",
            "smua.trigger.measure.iv(smua.nvbuffer1, smua.nvbuffer2)",
            "smua.trigger.measure.action = smua.ENABLE",
            "trigger.timer[1].delay = 0.01",
            "trigger.timer[1].count = 2",
            "trigger.timer[1].passthrough = true",
            "trigger.timer[1].stimulus = smua.trigger.ARMED_EVENT_ID",
            "smua.trigger.source.stimulus = trigger.timer[1].EVENT_ID",
            "trigger.timer[2].delay = 0.001",
            "trigger.timer[2].count = 1",
            "trigger.timer[2].passthrough = false",
            "trigger.timer[2].stimulus = smua.trigger.SOURCE_COMPLETE_EVENT_ID",
            "smua.trigger.endpulse.stimulus = trigger.timer[2].EVENT_ID",
            "smua.trigger.endpulse.action = smua.SOURCE_IDLE",
            "smua.trigger.count = 3",
            "smua.trigger.arm.count = 1",
            "smua.source.output = smua.OUTPUT_ON",
            "smua.trigger.initiate()",
            "waitcomplete()",
            printbuffer,
            "print(errorqueue.count)",
        ]

    def test_smub_pulses_use_timers_3_and_4(self):
        printbuffer = (
            "printbuffer(1, 1, smub.nvbuffer1.readings, smub.nvbuffer2.readings, "
            "smub.nvbuffer1.timestamps)"
        )
        smu, fake = make(K2636B, {printbuffer: "1e-6, 1, 0"}, channel=2)
        smu.configure_source_voltage(limit_a=1e-3)
        smu.configure_measure(nplc=0.01)
        fake.clear_traffic()
        smu.pulsed_list_sweep([1.0], width_s=1e-3, period_s=1e-2)
        assert "trigger.timer[3].count = 1" in fake.commands
        assert "smub.trigger.endpulse.stimulus = trigger.timer[4].EVENT_ID" in fake.commands

    def test_integration_longer_than_the_pulse_is_rejected(self):
        smu, fake = make(K2636B)
        smu.configure_source_voltage(limit_a=1e-3)  # default 1 PLC = 20 ms
        fake.clear_traffic()
        with pytest.raises(ParameterError, match="does not fit"):
            smu.pulsed_list_sweep([1.0], width_s=1e-3, period_s=1e-2)
        assert fake.commands == []

    def test_safe_state(self):
        smu, fake = make(K2636B, {"print(smua.source.levelv)": "5.00000e-01"})
        smu.safe_state()
        assert fake.commands == [
            "print(smua.source.levelv)",
            "smua.source.levelv = 0.4",
            "smua.source.levelv = 0.3",
            "smua.source.levelv = 0.2",
            "smua.source.levelv = 0.1",
            "smua.source.levelv = 0",
            "smua.source.output = smua.OUTPUT_OFF",
        ]

    def test_single_channel_model_has_no_smub(self):
        with pytest.raises(ParameterError, match="channel 2 does not exist"):
            make(K2600B_MODELS[0], channel=2)


# --- Keysight B2900 ------------------------------------------------------------------------


class TestKeysightB2900:
    def test_configure_source_and_measure_channel_2(self):
        smu, fake = make(B2902A, channel=2)
        smu.configure_source_voltage(limit_a=1e-3)
        smu.configure_measure(aperture_s=1e-4, range_a=1e-5)
        smu.set_voltage(-0.5)
        smu.output_on()
        smu.output_off()
        assert fake.commands == [
            ":SOUR2:FUNC:MODE VOLT",
            ":SOUR2:FUNC:SHAP DC",
            ":SOUR2:VOLT:MODE FIX",
            ":SENS2:CURR:PROT 0.001",
            ":SOUR2:VOLT:RANG:AUTO ON",
            ":SYST:ERR?",
            ':SENS2:FUNC "VOLT","CURR"',
            ":FORM:ELEM:SENS VOLT,CURR,TIME",
            ":SENS2:CURR:RANG:AUTO OFF",
            ":SENS2:CURR:RANG 1e-05",
            ":SENS2:CURR:APER 0.0001",
            ":SYST:ERR?",
            ":SOUR2:VOLT -0.5",
            ":OUTP2 ON",
            ":OUTP2 OFF",
        ]

    def test_configure_measure_nplc_and_source_current(self):
        smu, fake = make(B2902A)
        smu.configure_source_current(limit_v=3.0, range_a=1e-4)
        smu.configure_measure(nplc=0.1)
        assert fake.commands == [
            ":SOUR1:FUNC:MODE CURR",
            ":SOUR1:FUNC:SHAP DC",
            ":SOUR1:CURR:MODE FIX",
            ":SENS1:VOLT:PROT 3",
            ":SOUR1:CURR:RANG 0.0001",
            ":SYST:ERR?",
            ':SENS1:FUNC "VOLT","CURR"',
            ":FORM:ELEM:SENS VOLT,CURR,TIME",
            ":SENS1:VOLT:RANG:AUTO ON",
            ":SENS1:VOLT:NPLC 0.1",
            ":SYST:ERR?",
        ]

    def test_measure_uses_fixed_element_order_and_trip(self):
        smu, fake = make(
            B2902A,
            {
                ":MEAS? (@1)": "+5.000000E-01,+1.000000E-06,+1.234000E+00",
                ":SENS1:CURR:PROT:TRIP?": "0",
            },
        )
        smu.configure_source_voltage(limit_a=1e-3)
        fake.clear_traffic()
        reading = smu.measure_iv()
        assert (reading.current_a, reading.voltage_v) == (1e-6, 0.5)
        assert smu.in_compliance() is False
        assert fake.commands == [
            ":FORM:ELEM:SENS VOLT,CURR,TIME",
            ":MEAS? (@1)",
            ":SENS1:CURR:PROT:TRIP?",
        ]

    def test_list_sweep(self):
        data = "0,1e-9,0.0,1,2e-6,0.0021,0,3e-9,0.0042"
        smu, fake = make(B2902A, {":FETC:ARR? (@2)": data}, channel=2)
        smu.configure_source_voltage(limit_a=1e-3)
        smu.configure_measure(aperture_s=1e-4)
        fake.clear_traffic()
        result = smu.list_sweep([0.0, 1.0, 0.0], delay_s=1e-3)
        assert fake.commands == [
            ":SOUR2:FUNC:SHAP DC",
            ":SOUR2:VOLT:MODE LIST",
            ":SOUR2:LIST:VOLT 0,1,0",
            ":TRIG2:SOUR TIM",
            ":TRIG2:TIM 0.0021",
            ":TRIG2:COUN 3",
            ":TRIG2:ACQ:DEL 0.001",
            ":FORM:ELEM:SENS VOLT,CURR,TIME",
            ":OUTP2 ON",
            ":INIT (@2)",
            "*OPC?",
            ":FETC:ARR? (@2)",
            ":SYST:ERR?",
        ]
        np.testing.assert_array_equal(result.voltage_v, [0.0, 1.0, 0.0])
        np.testing.assert_array_equal(result.current_a, [1e-9, 2e-6, 3e-9])
        np.testing.assert_array_equal(result.time_s, [0.0, 0.0021, 0.0042])

    def test_linear_sweep(self):
        smu, fake = make(B2902A, {":FETC:ARR? (@1)": "0,0,0,1,1e-6,0.1"})
        smu.configure_source_voltage(limit_a=1e-3)
        smu.configure_measure(nplc=1.0)
        fake.clear_traffic()
        smu.linear_sweep(0.0, 1.0, 2, delay_s=0.0)
        assert fake.commands == [
            ":SOUR1:FUNC:SHAP DC",
            ":SOUR1:VOLT:MODE SWE",
            ":SOUR1:VOLT:STAR 0",
            ":SOUR1:VOLT:STOP 1",
            ":SOUR1:VOLT:POIN 2",
            ":TRIG1:SOUR TIM",
            ":TRIG1:TIM 0.021",
            ":TRIG1:COUN 2",
            ":TRIG1:ACQ:DEL 0",
            ":FORM:ELEM:SENS VOLT,CURR,TIME",
            ":OUTP1 ON",
            ":INIT (@1)",
            "*OPC?",
            ":FETC:ARR? (@1)",
            ":SYST:ERR?",
        ]

    def test_pulsed_list_sweep(self):
        smu, fake = make(B2902A, {":FETC:ARR? (@1)": "1,1e-6,0,2,2e-6,0.01"})
        smu.configure_source_voltage(limit_a=1e-3)
        smu.configure_measure(aperture_s=1e-4)
        fake.clear_traffic()
        result = smu.pulsed_list_sweep([1.0, 2.0], width_s=5e-4, period_s=1e-2, base_v=0.1)
        assert fake.commands == [
            ":SOUR1:FUNC:SHAP PULS",
            ":SOUR1:VOLT 0.1",
            ":SOUR1:VOLT:MODE LIST",
            ":SOUR1:LIST:VOLT 1,2",
            ":SOUR1:PULS:DEL 0",
            ":SOUR1:PULS:WIDT 0.0005",
            ":TRIG1:SOUR TIM",
            ":TRIG1:TIM 0.01",
            ":TRIG1:COUN 2",
            ":TRIG1:ACQ:DEL 0.00035",
            ":FORM:ELEM:SENS VOLT,CURR,TIME",
            ":OUTP1 ON",
            ":INIT (@1)",
            "*OPC?",
            ":FETC:ARR? (@1)",
            ":SYST:ERR?",
        ]
        np.testing.assert_array_equal(result.current_a, [1e-6, 2e-6])

    def test_safe_state(self):
        smu, fake = make(B2902A, {":SOUR2:VOLT?": "-2.5"}, channel=2)
        smu.safe_state()
        assert fake.commands == [
            ":SOUR2:VOLT?",
            ":SOUR2:VOLT -2",
            ":SOUR2:VOLT -1.5",
            ":SOUR2:VOLT -1",
            ":SOUR2:VOLT -0.5",
            ":SOUR2:VOLT 0",
            ":OUTP2 OFF",
        ]

    def test_single_channel_model(self):
        smu, fake = make(B2911A)
        smu.configure_source_voltage(limit_a=1e-3)
        assert fake.commands[0] == ":SOUR1:FUNC:MODE VOLT"
        with pytest.raises(ParameterError, match="channel 2"):
            make(B2911A, channel=2)


# --- safety, common to all models -----------------------------------------------------------


ALL_SMUS = [K2450, K2636B, B2902A]


@pytest.mark.parametrize("spec", ALL_SMUS, ids=lambda s: s.name)
def test_safe_state_survives_a_broken_connection(spec, caplog):
    fake = FakeResource(broken=True)
    smu = Smu(fake, spec)
    with caplog.at_level(logging.WARNING):
        smu.safe_state()  # must not raise
    assert "output off failed" in caplog.text


@pytest.mark.parametrize("spec", ALL_SMUS, ids=lambda s: s.name)
def test_safe_state_still_turns_output_off_when_level_query_fails(spec):
    smu, fake = make(spec)  # level query unscripted: times out
    smu.safe_state()
    assert len(fake.commands) == 3  # failed level query, level 0, output off
    assert "OFF" in fake.commands[-1]


def _expect_rejected(smu, fake, call, match):
    fake.clear_traffic()
    with pytest.raises(ParameterError, match=match):
        call(smu)
    assert fake.commands == []


@pytest.mark.parametrize("spec", ALL_SMUS, ids=lambda s: s.name)
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.set_voltage(1.5), "bench limit"),
        (lambda s: s.set_voltage(500.0), "model limit"),
        (lambda s: s.configure_source_voltage(limit_a=2e-3), "limit_a"),
        (lambda s: s.configure_source_voltage(limit_a=0.0), "limit_a"),
        (lambda s: s.configure_source_voltage(limit_a=1e-3, range_v=1000.0), "range_v"),
        (lambda s: s.configure_source_current(limit_v=1.5), "limit_v"),
        (lambda s: s.set_current(5e-3), "level_a"),
        (lambda s: s.list_sweep([0.0, 1.2]), r"levels_v\[1\]"),
        (lambda s: s.list_sweep([]), "sweep points"),
        (lambda s: s.list_sweep([0.0], delay_s=-1.0), "delay_s"),
        (lambda s: s.linear_sweep(0.0, 2.0, 5), "stop_v"),
        (lambda s: s.linear_sweep(0.0, 1.0, 1), "points"),
        (lambda s: s.configure_measure(nplc=1000.0), "nplc"),
        (lambda s: s.configure_measure(range_v=1.0), "range_a instead"),
        (lambda s: s.configure_measure(nplc=1.0, aperture_s=0.02), "not both"),
        (lambda s: s.configure_measure(nplc=float("nan")), "nplc"),
    ],
)
def test_limits_are_checked_before_any_io(spec, call, match):
    smu, fake = make(spec, limits=UserLimits(-1.0, 1.0, 1e-3))
    smu.configure_source_voltage(limit_a=1e-3)
    _expect_rejected(smu, fake, call, match)


@pytest.mark.parametrize("spec", [K2636B, B2902A], ids=lambda s: s.name)
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.pulsed_list_sweep([1.0], width_s=1e-6, period_s=1.0), "width_s"),
        (lambda s: s.pulsed_list_sweep([1.0], width_s=1e-3, period_s=1.5e-3), "duty cycle"),
        (lambda s: s.pulsed_list_sweep([5.0], width_s=1e-3, period_s=1e-2), "bench limit"),
        (
            lambda s: s.pulsed_list_sweep([1.0], width_s=1e-3, period_s=1e-2, base_v=-3.0),
            "base_v",
        ),
    ],
)
def test_pulse_limits_are_checked_before_any_io(spec, call, match):
    smu, fake = make(spec, limits=UserLimits(-2.0, 2.0, 1e-3))
    smu.configure_source_voltage(limit_a=1e-3)
    smu.configure_measure(nplc=0.01)
    _expect_rejected(smu, fake, call, match)


@pytest.mark.parametrize("spec", ALL_SMUS, ids=lambda s: s.name)
def test_source_must_be_configured_before_levels_and_sweeps(spec):
    smu, fake = make(spec)
    for call in (
        lambda s: s.set_voltage(0.1),
        lambda s: s.set_current(1e-6),
        lambda s: s.output_on(),
        lambda s: s.list_sweep([0.0, 0.1]),
    ):
        _expect_rejected(smu, fake, call, "first")


def test_too_many_list_points_for_the_b2900():
    smu, fake = make(B2902A)
    smu.configure_source_voltage(limit_a=1e-3)
    _expect_rejected(smu, fake, lambda s: s.list_sweep([0.0] * 2501), "1..2500")


def test_bad_line_frequency():
    with pytest.raises(ParameterError, match="line_frequency_hz"):
        Smu(FakeResource(), K2450, line_frequency_hz=55.0)


# --- measure_at: set the level and read in one message ----------------------------------------


@pytest.mark.parametrize(
    ("spec", "message", "reply"),
    [
        (K2450, ':SOUR:VOLT 0.25;:READ? "defbuffer1",READ,SOUR', "1.5E-06,2.500000E-01"),
        (K2636B, "smua.source.levelv = 0.25 print(smua.measure.iv())",
         "1.50000e-06\t2.50000e-01"),
        (B2902A, ":SOUR1:VOLT 0.25;:FORM:ELEM:SENS VOLT,CURR,TIME;:MEAS? (@1)",
         "+2.500000E-01,+1.500000E-06,+1.000000E-03"),
    ],
    ids=["2450", "2636B", "B2902A"],
)
def test_measure_at_sends_one_compound_query(spec, message, reply):
    smu, fake = make(spec, {message: reply})
    smu.configure_source_voltage(limit_a=1e-3)
    fake.clear_traffic()
    reading = smu.measure_at(0.25)
    assert (reading.current_a, reading.voltage_v) == (1.5e-6, 0.25)
    assert fake.traffic == [("q", message)]


def test_measure_at_current_source_2450():
    smu, fake = make(K2450, {':SOUR:CURR 1e-06;:READ? "defbuffer1",READ,SOUR': "3.0E-01,1.0E-06"})
    smu.configure_source_current(limit_v=1.0)
    fake.clear_traffic()
    reading = smu.measure_at(1e-6)
    assert (reading.current_a, reading.voltage_v) == (1e-6, 0.3)
    assert fake.commands == [':SOUR:CURR 1e-06;:READ? "defbuffer1",READ,SOUR']


def test_measure_at_checks_limits_and_mode_before_any_io():
    smu, fake = make(K2450, limits=UserLimits(voltage_max_v=1.0))
    with pytest.raises(ParameterError, match="configure_source_voltage"):
        smu.measure_at(0.5)
    smu.configure_source_voltage(limit_a=1e-3)
    fake.clear_traffic()
    for bad in (1.5, 250.0, float("nan")):
        with pytest.raises(ParameterError, match="level_v"):
            smu.measure_at(bad)
    assert fake.traffic == []


def test_measure_at_rejects_a_short_reply():
    smu, _ = make(K2450, {':SOUR:VOLT 0.1;:READ? "defbuffer1",READ,SOUR': "1.0E-06"})
    smu.configure_source_voltage(limit_a=1e-3)
    with pytest.raises(InstrumentError, match="expected 2 values"):
        smu.measure_at(0.1)


def test_b2900_reads_several_channels_in_one_query():
    smu, fake = make(B2902A, {":MEAS:CURR? (@1,2)": "+1.5E-06,-2.0E-07"})
    assert smu.measure_currents([1, 2]) == [1.5e-6, -2e-7]
    assert fake.commands == [":MEAS:CURR? (@1,2)"]
    with pytest.raises(ParameterError, match="must be some of"):
        smu.measure_currents([3])
    assert fake.commands == [":MEAS:CURR? (@1,2)"]  # nothing sent for a bad channel


@pytest.mark.parametrize("spec", [K2450, K2636B], ids=["2450", "2636B"])
def test_models_without_channel_lists_say_so(spec):
    smu, fake = make(spec)
    with pytest.raises(CapabilityError, match="one channel at a time"):
        smu.measure_currents([1])
    assert fake.commands == []
