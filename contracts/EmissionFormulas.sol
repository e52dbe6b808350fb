// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/**
 * @dev Emission formulas in fixed-point integer arithmetic, bit-identical to the Python
 * package `carbon_rules` (`carbon_rules.fixed_point` and `carbon_rules.formulas`).
 *
 * Representation: every quantity (activity data, factor, emission) is an unsigned
 * integer holding the decimal value times 10**18 ({SCALE}), e.g. 0.5703 tCO2/MWh is
 * `570300000000000000`. Every input, every intermediate result and every result must
 * lie in `[0, MAX_VALUE]` with `MAX_VALUE = type(uint128).max` (about 3.4e20 in real
 * units); the first value found outside it reverts with {EmissionFormulasOverflow}
 * carrying that value. Inputs are checked in argument order before anything is computed.
 * Because operands never exceed 2**128 - 1, no uint256 operation below can wrap.
 *
 * Rounding: one rule, applied after every multiplication and ratio, nowhere else:
 * round half up (ties toward +infinity; all operands are non-negative, so this is also
 * half away from zero). `mul(a, b) = (a * b + SCALE / 2) / SCALE` and
 * `mulRatio(x, n, d) = (x * n + d / 2) / d`. Sums and differences are exact.
 *
 * Steps are evaluated left to right exactly as written in each function's comment;
 * Python evaluates the same steps in the same order, which is what makes the results
 * agree to the last digit.
 */
library EmissionFormulas {
    /// @dev One unit in fixed point: values carry 18 decimals.
    uint256 internal constant SCALE = 1e18;
    /// @dev Half a unit of the last decimal place of a product, for round half up.
    uint256 internal constant HALF = 5e17;
    /// @dev The largest value any input, intermediate or result may take.
    uint256 internal constant MAX_VALUE = type(uint128).max;

    /// @dev Molar mass ratio CO2 / C = 44 / 12, applied as an exact ratio.
    uint256 internal constant CO2_PER_C_NUM = 44;
    uint256 internal constant CO2_PER_C_DEN = 12;

    /**
     * @dev `value` (an input, an intermediate or a result) exceeds {MAX_VALUE}.
     */
    error EmissionFormulasOverflow(uint256 value);

    /**
     * @dev One fuel of a fossil-fuel combustion source: consumption `FC` (t, or 10**4 Nm3
     * for gases), net calorific value `NCV` (GJ per unit of FC), carbon content `CC`
     * (tC/GJ) and oxidation rate `OF` (a fraction, 1 = `SCALE`).
     */
    struct FuelLine {
        uint256 consumption;
        uint256 netCalorificValue;
        uint256 carbonContent;
        uint256 oxidationRate;
    }

    /**
     * @dev One process-emission line: `amount` of activity (t of raw material, or t of a
     * gas released as itself), `emissionFactor` (t of gas per unit of amount; 1 for a gas
     * released as itself) and `gwp` (tCO2e per t of gas; 1 for CO2).
     */
    struct ProcessLine {
        uint256 amount;
        uint256 emissionFactor;
        uint256 gwp;
    }

    /// @dev Returns `value`; reverts with {EmissionFormulasOverflow} above {MAX_VALUE}.
    function checked(uint256 value) internal pure returns (uint256) {
        if (value > MAX_VALUE) {
            revert EmissionFormulasOverflow(value);
        }
        return value;
    }

    /// @dev `a * b` in fixed point, rounded half up; operands must already be checked.
    function mul(uint256 a, uint256 b) internal pure returns (uint256) {
        return checked((a * b + HALF) / SCALE);
    }

    /// @dev `x * num / den`, rounded half up; `x` must already be checked.
    function mulRatio(uint256 x, uint256 num, uint256 den) internal pure returns (uint256) {
        return checked((x * num + den / 2) / den);
    }

    /// @dev `a + b`, exact; operands must already be checked.
    function add(uint256 a, uint256 b) internal pure returns (uint256) {
        return checked(a + b);
    }

    /**
     * @dev Purchased electricity or heat: `E = AD x EF`.
     * Steps: check AD, check EF, `mul(AD, EF)`.
     */
    function purchasedEnergy(uint256 activityData, uint256 emissionFactor) internal pure returns (uint256) {
        checked(activityData);
        checked(emissionFactor);
        return mul(activityData, emissionFactor);
    }

    /**
     * @dev One fuel: `E = FC x NCV x CC x OF x 44/12`.
     * Steps: check FC, NCV, CC, OF; `e = mul(FC, NCV)`; `e = mul(e, CC)`;
     * `e = mul(e, OF)`; `e = mulRatio(e, 44, 12)`.
     */
    function fuelLine(FuelLine memory line) internal pure returns (uint256 e) {
        checked(line.consumption);
        checked(line.netCalorificValue);
        checked(line.carbonContent);
        checked(line.oxidationRate);
        e = mul(line.consumption, line.netCalorificValue);
        e = mul(e, line.carbonContent);
        e = mul(e, line.oxidationRate);
        e = mulRatio(e, CO2_PER_C_NUM, CO2_PER_C_DEN);
    }

    /**
     * @dev One process line: `E = amount x EF x GWP`.
     * Steps: check amount, EF, GWP; `e = mul(amount, EF)`; `e = mul(e, GWP)`.
     */
    function processLine(ProcessLine memory line) internal pure returns (uint256 e) {
        checked(line.amount);
        checked(line.emissionFactor);
        checked(line.gwp);
        e = mul(line.amount, line.emissionFactor);
        e = mul(e, line.gwp);
    }

    /**
     * @dev A CCER-style project: `reductions = baseline - project - leakage`, which may be
     * negative. Steps: check baseline, project, leakage; `d = add(project, leakage)`;
     * `baseline - d` (exact, in `[-MAX_VALUE, MAX_VALUE]`).
     */
    function projectReductions(
        uint256 baseline,
        uint256 projectEmissions,
        uint256 leakage
    ) internal pure returns (int256) {
        checked(baseline);
        checked(projectEmissions);
        checked(leakage);
        uint256 deducted = add(projectEmissions, leakage);
        // Both operands are at most 2**128 - 1, so the casts and the difference are exact.
        return int256(baseline) - int256(deducted);
    }
}
