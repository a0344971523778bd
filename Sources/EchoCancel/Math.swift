// Elementary functions for set-up code and statistics. The standard library has no sin, cos, exp or log
// and this module may import nothing else; these run only at construction or when statistics are read,
// never per sample, so plain series are fast enough and exact to double precision.

/// Constants and elementary functions in double precision.
enum DSPMath {
    static let pi = 3.141_592_653_589_793_238_46
    static let ln2 = 0.693_147_180_559_945_309_42
    static let ln10 = 2.302_585_092_994_045_684_02

    /// sin(x) by range reduction to [-pi/4, pi/4] and Taylor series.
    static func sin(_ x: Double) -> Double {
        guard x.isFinite else { return .nan }
        let twoPi = 2 * pi
        var r = x - (x / twoPi).rounded(.down) * twoPi  // [0, 2pi)
        var sign = 1.0
        if r > pi { r -= pi; sign = -1 }                // [0, pi]
        if r > pi / 2 { r = pi - r }                    // [0, pi/2]
        let s = r > pi / 4 ? cosSeries(pi / 2 - r) : sinSeries(r)
        return sign * s
    }

    /// cos(x) = sin(x + pi/2), with the reduction done carefully for small arguments.
    static func cos(_ x: Double) -> Double { sin(x + pi / 2) }

    private static func sinSeries(_ x: Double) -> Double {
        let x2 = x * x
        var term = x, sum = x
        for n in stride(from: 2, through: 30, by: 2) {
            term *= -x2 / Double(n * (n + 1))
            sum += term
        }
        return sum
    }

    private static func cosSeries(_ x: Double) -> Double {
        let x2 = x * x
        var term = 1.0, sum = 1.0
        for n in stride(from: 1, through: 29, by: 2) {
            term *= -x2 / Double(n * (n + 1))
            sum += term
        }
        return sum
    }

    /// Natural logarithm: exponent times ln 2 plus the atanh series of the significand.
    static func log(_ x: Double) -> Double {
        guard x > 0 else { return x == 0 ? -.infinity : .nan }
        guard x.isFinite else { return x }
        let e = Double(x.exponent)
        let m = x.significand  // [1, 2)
        let t = (m - 1) / (m + 1)
        let t2 = t * t
        var term = t, sum = t
        for n in stride(from: 3, through: 61, by: 2) {
            term *= t2
            sum += term / Double(n)
        }
        return e * ln2 + 2 * sum
    }

    /// 10 log10(x), clamped to -200 dB for zero.
    static func decibels(power x: Double) -> Double {
        x > 1e-20 ? 10 * log(x) / ln10 : -200
    }

    /// e^x by splitting off powers of two.
    static func exp(_ x: Double) -> Double {
        guard x.isFinite else { return x > 0 ? .infinity : 0 }
        if x > 709 { return .infinity }
        if x < -745 { return 0 }
        let k = (x / ln2).rounded()
        let r = x - k * ln2
        var term = 1.0, sum = 1.0
        for n in 1...25 {
            term *= r / Double(n)
            sum += term
        }
        return Double(sign: .plus, exponent: Int(k), significand: sum)
    }

    /// Zeroth-order modified Bessel function of the first kind (Kaiser windows).
    static func besselI0(_ x: Double) -> Double {
        var sum = 1.0, term = 1.0
        let q = x * x / 4
        for k in 1...60 {
            term *= q / Double(k * k)
            sum += term
            if term < sum * 1e-17 { break }
        }
        return sum
    }
}
