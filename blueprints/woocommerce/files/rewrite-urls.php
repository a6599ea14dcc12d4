<?php
// Rewrites a WordPress database from one site's URL to another's, as a clone needs: every
// text column of every table, in one transaction.
//
//   php rewrite-urls.php
//
// Environment (nothing else is read):
//   OLD_URL, NEW_URL   the sites, as scheme://host[:port] (`http://a.example`); a path is
//                      refused (the stores serve WordPress at the root)
//   DB_HOST, DB_PORT (default 3306) or DB_SOCKET, DB_USER, DB_PASSWORD, DB_NAME
//
// What is rewritten: the old host, compared without regard to case, written as
//   http://old  https://old     -> NEW_URL's scheme and host
//   //old                       -> //new   (protocol-relative)
//   http:\/\/old  \/\/old       -> the same, JSON-escaped
// and only as a whole host: the next character must not continue a host name, so with old
// `old.host`, `old.host.evil.com`, `old.hostile.com`, `old.host-2.com` and `old.host:8080` (another
// port is another site) stay, while `old.host/`, `old.host"`, `old.host\/` and a sentence's
// final `old.host.` change. Bare host names without `//` are not URLs and stay.
//
// Values that are PHP-serialized (they unserialize) are rewritten inside: each string is
// rewritten (recursively, a serialized string inside a serialized one too) and its length
// recomputed; everything else is kept byte for byte, and the result must unserialize again.
// A value that looks serialized but does not unserialize is left as it is and counted.
// Array keys and object property names are not rewritten.
//
// Idempotent: a second run finds nothing to change. Prints, per table, how many rows changed.

declare(strict_types=1);

const TEXT_TYPES = ['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'json'];

function fail(string $message): never
{
    fwrite(STDERR, "[rewrite-urls] error: $message\n");
    exit(1);
}

function env(string $name, ?string $default = null): string
{
    $value = getenv($name);
    if ($value === false || ($value === '' && $default !== null)) {
        if ($default === null) {
            fail("$name is not set");
        }
        return $default;
    }
    return $value;
}

/** [scheme, host[:port]] of a site URL, lower-cased; anything else is refused. */
function parse_site(string $name): array
{
    $url = env($name);
    $label = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
    if (!preg_match("~^(https?)://($label(?:\\.$label)*(?::[0-9]{1,5})?)/?$~i", $url, $m)) {
        fail("$name must be a site URL such as https://shop.example (scheme and host only), not '$url'");
    }
    return [strtolower($m[1]), strtolower($m[2])];
}

/** The text rewriting of one value: plain, JSON-escaped and serialized forms. */
final class Rewriter
{
    private string $pattern;
    /** Values that looked serialized but did not unserialize, left as they were. */
    public int $damaged = 0;

    public function __construct(
        public readonly string $oldHost,
        private readonly string $newScheme,
        private readonly string $newHost,
    ) {
        // A host name goes on with a letter, digit, '-' or '_', or with '.' and one of
        // those; ':' and a digit is a port: another site.
        $this->pattern = '~(?:(https?):)?(//|\\\\/\\\\/)' . preg_quote($oldHost, '~')
            . '(?![a-z0-9_-]|\.[a-z0-9_-]|:[0-9])~i';
    }

    public function value(string $value): string
    {
        if (stripos($value, $this->oldHost) === false) {
            return $value;
        }
        // As WordPress decides (is_serialized): by the first and the last character. PHP's
        // unserialize() alone would accept text that merely starts like a serialized value.
        if (self::looksSerialized($value)) {
            $rewritten = self::unserializes($value) ? $this->serializedWhole($value) : null;
            if ($rewritten !== null) {
                return $rewritten;
            }
            $this->damaged++;
            return $value;
        }
        return $this->text($value);
    }

    /** The whole serialized value rewritten, or null if the walker cannot read all of it. */
    private function serializedWhole(string $value): ?string
    {
        $pos = 0;
        $rewritten = $this->serialized($value, $pos, 0);
        $rest = substr($value, $pos);
        if ($rewritten === null || trim($rest) !== '') {
            return null;
        }
        $rewritten .= $rest;
        return self::unserializes($rewritten) ? $rewritten : null;
    }

    private function text(string $value): string
    {
        return preg_replace_callback(
            $this->pattern,
            fn (array $m): string => ($m[1] !== '' ? $this->newScheme . ':' : '') . $m[2] . $this->newHost,
            $value,
        ) ?? $value;
    }

    public static function unserializes(string $value): bool
    {
        if ($value === 'b:0;') {
            return true;
        }
        // No class is instantiated: objects come back as __PHP_Incomplete_Class.
        return @unserialize($value, ['allowed_classes' => false]) !== false;
    }

    /** Like WordPress' is_serialized(): starts like a serialized value and ends like one. */
    private static function looksSerialized(string $value): bool
    {
        $value = trim($value);
        return (bool) preg_match('/^(?:N;$|[bid]:[^;]*;$|[aOC]:[0-9]+:.*\}$|[sSE]:[0-9]+:.*;$)/s', $value);
    }

    /**
     * Rewrites the serialized value starting at $pos and moves $pos past it; null when the
     * text there is not one this walker knows (the caller then keeps the whole value).
     * $rewrite false copies the value as it is (array keys, property names).
     */
    /** `O:<len>:"<class>":<count>:{` at $pos: [that text, count], or null. */
    private static function classHeader(string $s, int $pos, string $type): ?array
    {
        if (!preg_match('/\G' . $type . ':([0-9]{1,10}):"/', $s, $m, 0, $pos)) {
            return null;
        }
        $nameEnd = $pos + strlen($m[0]) + (int) $m[1];
        if (!preg_match('/\G":([0-9]{1,10}):\{/', $s, $n, 0, $nameEnd)) {
            return null;
        }
        return [substr($s, $pos, $nameEnd + strlen($n[0]) - $pos), (int) $n[1]];
    }

    private function serialized(string $s, int &$pos, int $depth, bool $rewrite = true): ?string
    {
        if ($depth > 256) {
            return null;
        }
        $rest = substr($s, $pos, 64);
        $type = $s[$pos] ?? '';
        switch ($type) {
            case 'N':
            case 'b':
            case 'i':
            case 'd':
            case 'r':
            case 'R':
                if (!preg_match('/^(?:N;|b:[01];|i:[+-]?[0-9]+;|d:[^;]{1,40};|[rR]:[0-9]+;)/', $rest, $m)) {
                    return null;
                }
                $pos += strlen($m[0]);
                return $m[0];
            case 's':
                if (!preg_match('/^s:([0-9]{1,10}):"/', $rest, $m)) {
                    return null;
                }
                $length = (int) $m[1];
                $start = $pos + strlen($m[0]);
                if (substr($s, $start + $length, 2) !== '";') {
                    return null;
                }
                $inner = substr($s, $start, $length);
                $pos = $start + $length + 2;
                if (!$rewrite) {
                    return $m[0] . $inner . '";';
                }
                $inner = $this->value($inner);
                return 's:' . strlen($inner) . ':"' . $inner . '";';
            case 'a':
            case 'O':
                $header = $type === 'a'
                    ? (preg_match('/^a:([0-9]{1,10}):\{/', $rest, $m) ? [$m[0], (int) $m[1]] : null)
                    : self::classHeader($s, $pos, 'O');
                if ($header === null) {
                    return null;
                }
                [$out, $count] = $header;
                $pos += strlen($out);
                for ($i = 0; $i < $count; $i++) {
                    $key = $this->serialized($s, $pos, $depth + 1, false);
                    if ($key === null) {
                        return null;
                    }
                    $value = $this->serialized($s, $pos, $depth + 1, $rewrite);
                    if ($value === null) {
                        return null;
                    }
                    $out .= $key . $value;
                }
                if (($s[$pos] ?? '') !== '}') {
                    return null;
                }
                $pos++;
                return $out . '}';
            case 'C':
                // A class's own serialization: an opaque payload of known length, kept.
                $header = self::classHeader($s, $pos, 'C');
                if ($header === null) {
                    return null;
                }
                $end = $pos + strlen($header[0]) + $header[1];
                if (($s[$end] ?? '') !== '}') {
                    return null;
                }
                $out = substr($s, $pos, $end + 1 - $pos);
                $pos = $end + 1;
                return $out;
            case 'E':
                if (!preg_match('/^E:([0-9]{1,10}):"/', $rest, $m)) {
                    return null;
                }
                $end = $pos + strlen($m[0]) + (int) $m[1];
                if (substr($s, $end, 2) !== '";') {
                    return null;
                }
                $out = substr($s, $pos, $end + 2 - $pos);
                $pos = $end + 2;
                return $out;
            default:
                return null;
        }
    }
}

/** A prepared statement with string parameters (mysqli::execute_query is PHP 8.2+). */
function run(mysqli $db, string $sql, array $params = []): mysqli_result|false
{
    $statement = $db->prepare($sql);
    if ($params !== []) {
        $statement->bind_param(str_repeat('s', count($params)), ...$params);
    }
    $statement->execute();
    $result = $statement->get_result();
    $statement->close();
    return $result;
}

function quote_name(string $name): string
{
    return '`' . str_replace('`', '``', $name) . '`';
}

[$oldScheme, $oldHost] = parse_site('OLD_URL');
[$newScheme, $newHost] = parse_site('NEW_URL');
if ($oldHost === $newHost && $oldScheme === $newScheme) {
    fail('OLD_URL and NEW_URL are the same site');
}
$dbName = env('DB_NAME');
$socket = env('DB_SOCKET', '');
$port = env('DB_PORT', '3306');
if (!ctype_digit($port)) {
    fail("invalid DB_PORT '$port'");
}

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
try {
    $db = new mysqli(
        $socket !== '' ? 'localhost' : env('DB_HOST'),
        env('DB_USER'),
        env('DB_PASSWORD', ''),
        $dbName,
        (int) $port,
        $socket !== '' ? $socket : null,
    );
    $db->set_charset('utf8mb4');
} catch (mysqli_sql_exception $e) {
    fail("cannot connect to the database $dbName: " . $e->getMessage());
}

$rewriter = new Rewriter($oldHost, $newScheme, $newHost);
$like = '%' . addcslashes($oldHost, '%_\\') . '%';
$total = 0;
try {
    $db->begin_transaction();
    $tables = $db->query(
        "SELECT table_name FROM information_schema.tables
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name"
    )->fetch_all();
    foreach ($tables as [$table]) {
        $columns = run($db, 
            'SELECT column_name, data_type, column_key FROM information_schema.columns
             WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position',
            [$table],
        )->fetch_all();
        $keys = array_values(array_map(fn ($c) => $c[0], array_filter($columns, fn ($c) => $c[2] === 'PRI')));
        $texts = array_values(array_map(
            fn ($c) => $c[0],
            array_filter($columns, fn ($c) => in_array(strtolower($c[1]), TEXT_TYPES, true)),
        ));
        if ($texts === []) {
            printf("%s: 0 rows changed\n", $table);
            continue;
        }
        $where = implode(' OR ', array_map(fn ($c) => 'LOWER(' . quote_name($c) . ') LIKE ?', $texts));
        $params = array_fill(0, count($texts), $like);
        if ($keys === []) {
            $found = run($db, 'SELECT COUNT(*) FROM ' . quote_name($table) . " WHERE $where", $params)
                ->fetch_row()[0];
            printf("%s: 0 rows changed%s\n", $table, $found > 0 ? ", $found rows skipped (no primary key)" : '');
            if ($found > 0) {
                fwrite(STDERR, "[rewrite-urls] warning: $table has no primary key; $found rows left as they are\n");
            }
            continue;
        }
        $select = 'SELECT ' . implode(', ', array_map('quote_name', array_merge($keys, $texts)))
            . ' FROM ' . quote_name($table) . " WHERE $where";
        $rows = run($db, $select, $params)->fetch_all();
        $keyWhere = implode(' AND ', array_map(fn ($k) => quote_name($k) . ' = ?', $keys));
        $changedRows = 0;
        $damagedBefore = $rewriter->damaged;
        foreach ($rows as $row) {
            $keyValues = array_slice($row, 0, count($keys));
            $set = [];
            $values = [];
            foreach ($texts as $i => $column) {
                $value = $row[count($keys) + $i];
                if ($value === null) {
                    continue;
                }
                $rewritten = $rewriter->value($value);
                if ($rewritten !== $value) {
                    $set[] = quote_name($column) . ' = ?';
                    $values[] = $rewritten;
                }
            }
            if ($set !== []) {
                run(
                    $db,
                    'UPDATE ' . quote_name($table) . ' SET ' . implode(', ', $set) . " WHERE $keyWhere",
                    array_merge($values, $keyValues),
                );
                $changedRows++;
            }
        }
        $damaged = $rewriter->damaged - $damagedBefore;
        printf(
            "%s: %d rows changed%s\n",
            $table,
            $changedRows,
            $damaged > 0 ? ", $damaged values left as they were (serialized, but damaged)" : '',
        );
        $total += $changedRows;
    }
    $db->commit();
} catch (mysqli_sql_exception $e) {
    try {
        $db->rollback();
    } catch (mysqli_sql_exception) {
    }
    fail('rewriting failed, nothing was changed: ' . $e->getMessage());
}
printf("done: %d rows changed from %s://%s to %s://%s\n", $total, $oldScheme, $oldHost, $newScheme, $newHost);
