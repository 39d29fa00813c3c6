// A very small SVG writer: elements with attributes and escaped text, numbers in invariant culture, so that every
// chart it writes is well-formed XML that browsers and GitHub render.
using System.Globalization;
using System.Text;

namespace NativeAttention.Cli.Reports;

internal sealed class SvgWriter
{
    private readonly StringBuilder _svg = new();
    private readonly Stack<string> _open = new();

    public SvgWriter(double width, double height)
    {
        _svg.Append(CultureInfo.InvariantCulture,
            $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{F(width)}\" height=\"{F(height)}\" viewBox=\"0 0 {F(width)} {F(height)}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        _open.Push("svg");
    }

    /// <summary>Opens an element that will hold others: <c>&lt;g ...&gt;</c> until <see cref="End"/>.</summary>
    public SvgWriter Begin(string name, params (string Name, object Value)[] attributes)
    {
        Indent();
        _svg.Append('<').Append(name);
        Attributes(attributes);
        _svg.Append(">\n");
        _open.Push(name);
        return this;
    }

    public SvgWriter End()
    {
        string name = _open.Pop();
        Indent();
        _svg.Append("</").Append(name).Append(">\n");
        return this;
    }

    /// <summary>An element with no content, or with escaped <paramref name="text"/>.</summary>
    public SvgWriter Element(string name, string? text, params (string Name, object Value)[] attributes)
    {
        Indent();
        _svg.Append('<').Append(name);
        Attributes(attributes);
        if (text is null) _svg.Append("/>\n");
        else _svg.Append('>').Append(Escape(text)).Append("</").Append(name).Append(">\n");
        return this;
    }

    public SvgWriter Line(double x1, double y1, double x2, double y2, string stroke, double width = 1) =>
        Element("line", null, ("x1", x1), ("y1", y1), ("x2", x2), ("y2", y2), ("stroke", stroke), ("stroke-width", width));

    public SvgWriter Text(double x, double y, string text, string anchor = "start", params (string Name, object Value)[] extra) =>
        Element("text", text, [("x", x), ("y", y), ("text-anchor", anchor), .. extra]);

    public override string ToString()
    {
        while (_open.Count > 0) End();
        return _svg.ToString();
    }

    /// <summary>A number with at most two decimals, invariant culture.</summary>
    public static string F(double value) => Math.Round(value, 2).ToString("0.##", CultureInfo.InvariantCulture);

    private void Attributes((string Name, object Value)[] attributes)
    {
        foreach (var (name, value) in attributes)
        {
            string text = value switch
            {
                double d => F(d),
                int i => i.ToString(CultureInfo.InvariantCulture),
                _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
            };
            _svg.Append(' ').Append(name).Append("=\"").Append(Escape(text)).Append('"');
        }
    }

    private void Indent() => _svg.Append(' ', 2 * _open.Count);

    private static string Escape(string text) => text
        .Replace("&", "&amp;", StringComparison.Ordinal)
        .Replace("<", "&lt;", StringComparison.Ordinal)
        .Replace(">", "&gt;", StringComparison.Ordinal)
        .Replace("\"", "&quot;", StringComparison.Ordinal);
}
