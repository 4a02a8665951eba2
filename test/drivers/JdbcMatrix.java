// PgJDBC through pgmux, used by test/test_drivers.py (compiled there with javac against Debian's
// /usr/share/java/postgresql.jar). Default driver settings: prepareThreshold=5, so the 5th
// execution of a PreparedStatement switches it to a named server statement (S_1, S_2, ... per
// connection: every connection uses the same names for its own texts).
//
// Usage: java -cp postgresql.jar:DIR JdbcMatrix prepared|batch|rollback
// Connection: PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD. Prints key=value lines; the Python
// test checks them. Any SQLException is printed as error=... and the exit status is 1.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

public class JdbcMatrix {
    static final AtomicInteger queries = new AtomicInteger();
    static final AtomicInteger mismatches = new AtomicInteger();
    static final AtomicInteger serverPrepared = new AtomicInteger();
    static final Set<Integer> pids = Collections.synchronizedSet(new HashSet<>());
    static final List<String> errors = Collections.synchronizedList(new ArrayList<>());
    static final List<String> examples = Collections.synchronizedList(new ArrayList<>());

    static Connection connect() throws SQLException {
        String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT")
                + "/" + System.getenv("PGDATABASE") + "?connectTimeout=20&socketTimeout=60";
        return DriverManager.getConnection(url, System.getenv("PGUSER"), System.getenv("PGPASSWORD"));
    }

    static void check(boolean ok, String what) {
        queries.incrementAndGet();
        if (!ok) {
            mismatches.incrementAndGet();
            if (examples.size() < 10) examples.add(what);
        }
    }

    static String describe(Throwable e) {
        String s = e.toString().replace('\n', ' ');
        if (e instanceof SQLException) {
            s += " [SQLSTATE " + ((SQLException) e).getSQLState() + "]";
            SQLException next = ((SQLException) e).getNextException();
            if (next != null) s += " next: " + next.toString().replace('\n', ' ');
        }
        return s;
    }

    interface Job {
        void run(int t) throws Exception;
    }

    static void inThreads(int n, Job job) throws InterruptedException {
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            final int t = i;
            Thread th = new Thread(() -> {
                try {
                    job.run(t);
                } catch (Throwable e) {
                    errors.add("thread " + t + ": " + describe(e));
                }
            });
            threads.add(th);
            th.start();
        }
        for (Thread th : threads) th.join();
    }

    // 10 connections in threads; each runs two PreparedStatements 20 times (past the threshold).
    // The first statement's text differs per connection, so S_1 means something else on each.
    static void prepared() throws Exception {
        inThreads(10, t -> {
            try (Connection c = connect()) {
                PreparedStatement own = c.prepareStatement(
                        "SELECT ?::int + " + (t * 100000) + " AS v, pg_backend_pid() AS pid");
                PreparedStatement common = c.prepareStatement(
                        "SELECT ?::text || '/' || ?::int AS s");
                for (int i = 0; i < 20; i++) {
                    own.setInt(1, i);
                    try (ResultSet rs = own.executeQuery()) {
                        boolean ok = rs.next() && rs.getInt(1) == t * 100000 + i;
                        pids.add(rs.getInt(2));
                        ok = ok && !rs.next();
                        check(ok, "conn " + t + " own round " + i);
                    }
                    common.setString(1, "c" + t);
                    common.setInt(2, i);
                    try (ResultSet rs = common.executeQuery()) {
                        boolean ok = rs.next() && rs.getString(1).equals("c" + t + "/" + i) && !rs.next();
                        check(ok, "conn " + t + " common round " + i);
                    }
                }
                if (own.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare()) {
                    serverPrepared.incrementAndGet();
                }
                own.close();
                common.close();
            }
        });
    }

    // 4 connections in threads; each inserts 1,000 rows with one executeBatch (autocommit on for
    // even threads, off + commit for odd ones), then counts its rows on the same connection.
    static void batch() throws Exception {
        inThreads(4, t -> {
            try (Connection c = connect()) {
                boolean autocommit = t % 2 == 0;
                c.setAutoCommit(autocommit);
                try (PreparedStatement ps = c.prepareStatement(
                        "INSERT INTO drv_jdbc_batch (id, t, v) VALUES (?, ?, ?)")) {
                    for (int i = 0; i < 1000; i++) {
                        int id = t * 1000 + i;
                        ps.setInt(1, id);
                        ps.setString(2, "row" + id);
                        ps.setLong(3, (long) id * 7);
                        ps.addBatch();
                    }
                    int[] counts = ps.executeBatch();
                    int sum = 0;
                    for (int n : counts) sum += (n == Statement.SUCCESS_NO_INFO ? 1 : n);
                    check(counts.length == 1000 && sum == 1000,
                            "thread " + t + " batch counts " + counts.length + "/" + sum);
                }
                if (!autocommit) c.commit();
                try (PreparedStatement q = c.prepareStatement(
                        "SELECT count(*), coalesce(sum(v), 0) FROM drv_jdbc_batch WHERE id >= ? AND id < ?")) {
                    for (int k = 0; k < 6; k++) {
                        q.setInt(1, t * 1000);
                        q.setInt(2, t * 1000 + 1000);
                        try (ResultSet rs = q.executeQuery()) {
                            rs.next();
                            long want = 7L * (1000L * t * 1000 + 999L * 1000 / 2);
                            check(rs.getLong(1) == 1000 && rs.getLong(2) == want,
                                    "thread " + t + " count " + rs.getLong(1) + " sum " + rs.getLong(2));
                        }
                        if (!autocommit) c.commit();
                    }
                }
            }
        });
    }

    // autocommit off: 10 inserts through one PreparedStatement (past the threshold), rollback,
    // then the count is unchanged; then the same inserts committed, and the count has grown by 10.
    static void rollback() throws Exception {
        inThreads(4, t -> {
            try (Connection c = connect()) {
                c.setAutoCommit(false);
                PreparedStatement ins = c.prepareStatement("INSERT INTO drv_jdbc_rb (id, owner) VALUES (?, ?)");
                PreparedStatement cnt = c.prepareStatement("SELECT count(*) FROM drv_jdbc_rb WHERE owner = ?");
                for (int round = 0; round < 3; round++) {
                    for (int i = 0; i < 10; i++) {
                        ins.setInt(1, t * 10000 + round * 100 + i);
                        ins.setInt(2, t);
                        check(ins.executeUpdate() == 1, "insert");
                    }
                    cnt.setInt(1, t);
                    try (ResultSet rs = cnt.executeQuery()) {
                        rs.next();
                        check(rs.getLong(1) == 10 * round + 10, "thread " + t + " inside: " + rs.getLong(1));
                    }
                    c.rollback();
                    try (ResultSet rs = cnt.executeQuery()) {
                        rs.next();
                        check(rs.getLong(1) == 10 * round, "thread " + t + " after rollback: " + rs.getLong(1));
                    }
                    c.commit();
                    // now for real
                    for (int i = 0; i < 10; i++) {
                        ins.setInt(1, t * 10000 + round * 100 + i);
                        ins.setInt(2, t);
                        check(ins.executeUpdate() == 1, "insert");
                    }
                    c.commit();
                    try (ResultSet rs = cnt.executeQuery()) {
                        rs.next();
                        check(rs.getLong(1) == 10 * round + 10, "thread " + t + " after commit: " + rs.getLong(1));
                    }
                    c.commit();
                }
                ins.close();
                cnt.close();
            }
        });
    }

    static synchronized void report() {
        System.out.println("queries=" + queries.get());
        System.out.println("mismatches=" + mismatches.get());
        System.out.println("server_prepared=" + serverPrepared.get());
        System.out.println("backend_pids=" + pids.size());
        synchronized (examples) {
            for (String s : examples) System.out.println("example=" + s);
        }
        synchronized (errors) {
            for (String s : errors) System.out.println("error=" + s);
        }
        System.out.flush();
        System.exit(errors.isEmpty() ? 0 : 1);
    }

    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "";
        // A pooler that loses track of a statement can leave a query hanging: give up after 40 s.
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(40000);
            } catch (InterruptedException e) {
                return;
            }
            errors.add("timed out after 40 s with " + queries.get() + " queries done");
            report();
        });
        watchdog.setDaemon(true);
        watchdog.start();
        try {
            switch (mode) {
                case "prepared": prepared(); break;
                case "batch": batch(); break;
                case "rollback": rollback(); break;
                default: throw new IllegalArgumentException("mode: prepared|batch|rollback");
            }
        } catch (Throwable e) {
            errors.add(describe(e));
        }
        report();
    }
}
